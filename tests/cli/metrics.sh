#!/usr/bin/env bash
# lorac metrics: scores on the committed fixture (the official scorer's numbers, to 1e-4), --json,
# the blank-line reference format, and one-line errors with a non-zero exit for bad input.
# Sections 1-4 run without the official METEOR's data (LORAC_METEOR_DATA names an empty folder);
# section 5 runs with it when tools/fetch_meteor.sh has fetched it, and says so when it has not.
set -u
LORAC=$1
SRC=$2
FIX=$SRC/tests/fixtures/metrics
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }
# where lorac finds the METEOR data by default (metrics_meteor_data_dir), before it is hidden
if [ -n "${LORAC_METEOR_DATA:-}" ]; then MDATA=$LORAC_METEOR_DATA
elif [ -n "${LORAC_CACHE:-}" ]; then MDATA=$LORAC_CACHE/meteor
else MDATA=${XDG_CACHE_HOME:-$HOME/.cache}/lorac/meteor; fi
mkdir -p "$TMP/nodata"
export LORAC_METEOR_DATA=$TMP/nodata

# 1. the text output carries the official numbers (4 decimals, as measure_scores.py prints them)
out=$("$LORAC" metrics --refs "$FIX/refs.txt" --hyps "$FIX/hyp_heldout.txt" 2> "$TMP/notice") || bad "metrics exited $?"
grep -q "METEOR data not found in $TMP/nodata.*not the official score.*tools/fetch_meteor.sh" "$TMP/notice" ||
    bad "no notice that METEOR is not the official one: $(cat "$TMP/notice")"
for m in BLEU NIST ROUGE_L CIDEr; do
    want=$(awk -v m=$m '$1=="heldout" && $2==m {printf "%.4f", $3}' "$FIX/expected.txt")
    got=$(printf '%s\n' "$out" | awk -v m="$m:" '$1==m {print $2}')
    [ "$got" = "$want" ] || bad "$m: got '$got' want '$want'"
done
printf '%s\n' "$out" | grep -q '^METEOR: not computed' || bad "METEOR line does not say it is not computed"
want=$(awk '$1=="heldout" && $2=="METEOR_ES" {printf "%.4f", $3}' "$FIX/expected.txt")
printf '%s\n' "$out" | grep -qx "METEOR (exact+stem only, not the official score): $want" || bad "METEOR exact+stem line wrong"

# 2. --json: one object with the same numbers
json=$("$LORAC" metrics --refs "$FIX/refs.txt" --hyps "$FIX/hyp_shifted.txt" --json) || bad "--json exited $?"
case "$json" in "{"*"}") ;; *) bad "--json output is not one object: $json" ;; esac
printf '%s' "$json" | grep -q '"METEOR": null' || bad "--json METEOR is not null"
for m in BLEU NIST METEOR_ES ROUGE_L CIDEr; do
    want=$(awk -v m=$m '$1=="shifted" && $2==m {print $3}' "$FIX/expected.txt")
    key=$m; [ $m = METEOR_ES ] && key=METEOR_exact_stem
    got=$(printf '%s' "$json" | sed -n "s/.*\"$key\": \([0-9.]*\).*/\1/p")
    awk -v a="$got" -v b="$want" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a != "" && d <= 1e-4) }' ||
        bad "json $m: got '$got' want '$want'"
done

# 3. reference blocks separated by blank lines read the same as the context||reference file
awk -F'\\|\\|' 'NR > 1 && $1 != prev { print "" } { sub(/^ +/, "", $2); print $2; prev = $1 }' "$FIX/refs.txt" > "$TMP/blocks.txt"
a=$("$LORAC" metrics --refs "$FIX/refs.txt" --hyps "$FIX/hyp_shifted.txt" --json)
b=$("$LORAC" metrics --refs "$TMP/blocks.txt" --hyps "$FIX/hyp_shifted.txt" --json)
[ "$a" = "$b" ] || bad "block format differs: $b vs $a"

# 4. bad input: one line on stderr, non-zero exit
expect_error() { # pattern, then the command's arguments
    local pat=$1; shift
    "$LORAC" metrics "$@" > "$TMP/out" 2> "$TMP/err"
    local rc=$?
    [ $rc -ne 0 ] || bad "exit 0 for $*"
    [ "$(wc -l < "$TMP/err")" -eq 1 ] || bad "stderr is not one line for $*: $(cat "$TMP/err")"
    grep -q -- "$pat" "$TMP/err" || bad "stderr lacks '$pat': $(cat "$TMP/err")"
}
head -n 99 "$FIX/hyp_heldout.txt" > "$TMP/hyps99.txt"
expect_error "^lorac: .*hyps99.txt has 99 lines but .*refs.txt has 100 reference groups$" --refs "$FIX/refs.txt" --hyps "$TMP/hyps99.txt"
: > "$TMP/empty.txt"
expect_error "empty.txt: empty file" --refs "$FIX/refs.txt" --hyps "$TMP/empty.txt"
expect_error "empty.txt: empty file" --refs "$TMP/empty.txt" --hyps "$FIX/hyp_heldout.txt"
{ head -n 4 "$FIX/hyp_heldout.txt"; printf 'bad \377 byte\n'; } > "$TMP/badutf8.txt"
expect_error "badutf8.txt: line 5: invalid UTF-8" --refs "$FIX/refs.txt" --hyps "$TMP/badutf8.txt"
expect_error "nosuchfile" --refs "$TMP/nosuchfile" --hyps "$FIX/hyp_heldout.txt"
expect_error "--refs and --hyps are required" --refs "$FIX/refs.txt"
expect_error "unknown option" --refs "$FIX/refs.txt" --hyps "$FIX/hyp_heldout.txt" --bogus
expect_error "nodata lacks english.synsets.*tools/fetch_meteor.sh" --refs "$FIX/refs.txt" --hyps "$FIX/hyp_heldout.txt" --meteor-data "$TMP/nodata"

# 5. the official METEOR (all four stages), when its data is there
if [ -s "$MDATA/english.synsets" ] && [ -s "$MDATA/english.exceptions" ] && [ -s "$MDATA/paraphrase-en.gz" ]; then
    out=$("$LORAC" metrics --refs "$FIX/refs.txt" --hyps "$FIX/hyp_heldout.txt" --meteor-data "$MDATA" \
        --meteor-per-input "$TMP/per.txt" 2> "$TMP/notice") || bad "metrics --meteor-data exited $?"
    [ ! -s "$TMP/notice" ] || bad "a notice with the METEOR data: $(cat "$TMP/notice")"
    want=$(awk '$1=="heldout" && $2=="METEOR" {printf "%.4f", $3}' "$FIX/expected.txt")
    printf '%s\n' "$out" | grep -qx "METEOR: $want (official METEOR 1.5: exact, stem, synonym and paraphrase stages)" ||
        bad "official METEOR line wrong (want $want): $(printf '%s\n' "$out" | grep '^METEOR')"
    [ "$(wc -l < "$TMP/per.txt")" -eq 100 ] || bad "--meteor-per-input wrote $(wc -l < "$TMP/per.txt") lines, not 100"
    LORAC_METEOR_DATA=$MDATA "$LORAC" metrics --refs "$FIX/refs.txt" --hyps "$FIX/hyp_heldout.txt" --json > "$TMP/json" ||
        bad "--json with LORAC_METEOR_DATA exited $?"
    grep -q '"METEOR": 0\.[0-9]*, "METEOR_version": "official' "$TMP/json" || bad "--json lacks the official METEOR: $(cat "$TMP/json")"
else
    echo "note: no METEOR data in $MDATA (tools/fetch_meteor.sh), so the official METEOR is not checked here"
fi

[ $fail -eq 0 ] && echo "PASS: lorac metrics"
exit $fail
