#!/usr/bin/env bash
# lorac metrics: scores on the committed fixture (the official scorer's numbers, to 1e-4), --json,
# the blank-line reference format, and one-line errors with a non-zero exit for bad input.
set -u
LORAC=$1
SRC=$2
FIX=$SRC/tests/fixtures/metrics
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }

# 1. the text output carries the official numbers (4 decimals, as measure_scores.py prints them)
out=$("$LORAC" metrics --refs "$FIX/refs.txt" --hyps "$FIX/hyp_heldout.txt") || bad "metrics exited $?"
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

[ $fail -eq 0 ] && echo "PASS: lorac metrics"
exit $fail
