#!/usr/bin/env bash
# lorac combine (PEFT's add_weighted_adapter: cat, svd, linear) on adapters made by the real PEFT
# library (tests/fixtures/peft, tools/peft_ref.py): each mode writes a loadable adapter directory;
# bad input (a scale that is not a number, a missing directory, unequal ranks for linear, an
# unknown mode, a legacy adapter_model.bin) exits 1 with ONE stderr line and writes nothing.
# Usage: adapters.sh LORAC SOURCE_DIR
set -u
lorac=$1
fix=$2/tests/fixtures/peft
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }

# expect_error WHAT NEEDLE OUTDIR CMD...: exit 1, one stderr line containing NEEDLE, no OUTDIR
expect_error() {
  local what=$1 needle=$2 out=$3
  shift 3
  "$@" >"$T/out" 2>"$T/err"
  local rc=$? lines
  lines=$(wc -l <"$T/err")
  [ $rc -eq 1 ] || bad "$what: exit $rc"
  [ "$lines" -eq 1 ] || bad "$what: $lines stderr lines: $(cat "$T/err")"
  grep -qF -- "$needle" "$T/err" || bad "$what: stderr lacks '$needle': $(cat "$T/err")"
  [ ! -e "$out" ] || bad "$what: left $out behind"
}

"$lorac" combine --adapter "$fix/qv_c_attn:0.5" --adapter "$fix/patterns_f16:-1" --mode cat --out "$T/cat" 2>"$T/err" \
  || bad "cat: $(cat "$T/err")"
[ -f "$T/cat/adapter_config.json" ] && [ -f "$T/cat/adapter_model.safetensors" ] || bad "cat wrote no adapter"
# c_attn: ranks 4 + 4 in layer 0, 4 + 2 in layer 1 (rank_pattern); c_proj and c_fc keep 4
grep -q '"h.0.attn.c_attn": 8' "$T/cat/adapter_config.json" && grep -q '"h.1.attn.c_attn": 6' "$T/cat/adapter_config.json" \
  || bad "cat: c_attn ranks should add: $(cat "$T/cat/adapter_config.json")"
# a combined adapter combines again (it is a valid PEFT directory)
"$lorac" combine --adapter "$T/cat" --adapter "$fix/qv_c_attn:2" --mode cat --out "$T/cat2" 2>"$T/err" \
  || bad "cat of a cat: $(cat "$T/err")"
out=$("$lorac" combine --adapter "$fix/qv_c_attn" --adapter "$fix/patterns_f16:0.25" --mode svd --rank 2 --out "$T/svd" 2>"$T/err") \
  || bad "svd: $(cat "$T/err")"
e=$(echo "$out" | sed -n 's/.*"energy_kept": \([0-9.e+-]*\).*/\1/p')
awk -v e="$e" 'BEGIN{exit !(e > 0 && e < 1)}' || bad "svd rank 2 energy kept '$e' not in (0,1)"
out=$("$lorac" combine --adapter "$fix/qv_c_attn" --adapter "$fix/qv_c_attn:3" --mode svd --rank 4 --out "$T/svd4" 2>"$T/err")
e=$(echo "$out" | sed -n 's/.*"energy_kept": \([0-9.e+-]*\).*/\1/p')
awk -v e="$e" 'BEGIN{exit !(e > 0.999999)}' || bad "svd of a rank-4 sum at rank 4 keeps everything: '$e'"
"$lorac" combine --adapter "$fix/qv_c_attn:0.3" --adapter "$fix/qv_c_attn:0.7" --mode linear --out "$T/lin" 2>"$T/err" \
  || bad "linear: $(cat "$T/err")"

expect_error "scale not a number" "'abc'" "$T/x1" "$lorac" combine --adapter "$fix/qv_c_attn:abc" --out "$T/x1"
expect_error "missing adapter" "adapter_config.json" "$T/x2" "$lorac" combine --adapter "$fix/qv_c_attn" --adapter "$T/nope" --out "$T/x2"
expect_error "linear with unequal ranks" "equal ranks" "$T/x3" \
  "$lorac" combine --adapter "$fix/qv_c_attn" --adapter "$fix/patterns_f16" --mode linear --out "$T/x3"
expect_error "unknown mode" "--mode ties" "$T/x4" "$lorac" combine --adapter "$fix/qv_c_attn" --mode ties --out "$T/x4"
expect_error "rank without svd" "--rank" "$T/x5" "$lorac" combine --adapter "$fix/qv_c_attn" --rank 2 --out "$T/x5"
expect_error "regex and list targets" "regex" "$T/x8" \
  "$lorac" combine --adapter "$fix/qv_c_attn" --adapter "$fix/rslora_bf16" --out "$T/x8"
mkdir "$T/legacy" && : >"$T/legacy/adapter_model.bin"
expect_error "legacy pickle" "safe_serialization" "$T/x6" "$lorac" combine --adapter "$T/legacy" --out "$T/x6"
mkdir "$T/dora" && cp "$fix/qv_c_attn/"* "$T/dora/" && sed -i 's/"use_dora": false/"use_dora": true/' "$T/dora/adapter_config.json"
expect_error "use_dora" "use_dora" "$T/x7" "$lorac" combine --adapter "$T/dora" --out "$T/x7"

# --adapter DIR[:SCALE] repeated, end to end (needs ../shared/data for a real vocabulary and text):
# a:0.5 + a:0.5 is a, a:0 is the base, a merged pair gives the pair's loss
DATA=$2/../shared/data
if [ -f "$DATA/gpt2-vocab/encoder.json" ] && [ -f "$DATA/e2e/train.txt" ]; then
  "$lorac" init-model --out "$T/m" --tokenizer-from "$DATA/gpt2-vocab" --layers 2 --embd 32 --heads 2 --positions 64 \
    --seed 3 >/dev/null 2>&1 || bad "init-model"
  head -n 16 "$DATA/e2e/train.txt" >"$T/train.txt"
  head -n 8 "$DATA/e2e/valid.txt" >"$T/valid.txt"
  "$lorac" train --model "$T/m" --data "$T/train.txt" --steps 3 --lr 5e-2 --batch-size 4 --rank 2 --out "$T/a" \
    --quiet >/dev/null 2>&1 || bad "train a"
  "$lorac" train --model "$T/m" --data "$T/train.txt" --steps 3 --lr 5e-2 --batch-size 4 --rank 2 --targets c_fc \
    --seed 9 --out "$T/b" --quiet >/dev/null 2>&1 || bad "train b"
  loss() { "$lorac" eval --model "$T/m" --data "$T/valid.txt" --json "$@" | sed -n 's/.*"loss": *\([0-9.e+-]*\).*/\1/p'; }
  close() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN{d=a-b; if(d<0)d=-d; exit !(a != "" && d <= t)}'; }
  base=$(loss)
  la=$(loss --adapter "$T/a")
  lhalf=$(loss --adapter "$T/a:0.5" --adapter "$T/a:0.5")
  lzero=$(loss --adapter "$T/a:0")
  lab=$(loss --adapter "$T/a:0.7" --adapter "$T/b:-0.4")
  close "$la" "$lhalf" 1e-5 || bad "a:0.5 + a:0.5 = $lhalf, a = $la"
  close "$base" "$lzero" 1e-6 || bad "a:0 = $lzero, base = $base"
  close "$la" "$base" 0 && bad "the adapter changes nothing ($la)"
  "$lorac" merge --model "$T/m" --adapter "$T/a:0.7" --adapter "$T/b:-0.4" --out "$T/mab" >/dev/null 2>&1 || bad "merge pair"
  lm=$("$lorac" eval --model "$T/mab" --data "$T/valid.txt" --json | sed -n 's/.*"loss": *\([0-9.e+-]*\).*/\1/p')
  close "$lab" "$lm" 1e-4 || bad "merged pair loss $lm, pair loss $lab"
  expect_error "eval scale not a number" "'x'" "$T/none" "$lorac" eval --model "$T/m" --data "$T/valid.txt" --adapter "$T/a:x"
else
  echo "note: ../shared/data is absent; the eval/merge part with several adapters did not run"
fi
exit $fail
