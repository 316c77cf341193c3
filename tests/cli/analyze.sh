#!/usr/bin/env bash
# lorac analyze (the LoRA paper's Section 7) end to end on a tiny random GPT-2 (`lorac init-model`,
# n_embd 16, 1 layer) with the GPT-2 adapters of tests/fixtures/analyze (lorac's q,v split of c_attn
# + c_fc, r 2 and r 3): --json has the issue's keys for every module (c_attn.q, c_attn.v, c_fc), --out
# writes the SVG figures and analysis.json; a Llama GGUF adapter over an F32 GGUF base gives the
# spectrum of the same adapter as a PEFT directory, over a Q8_0 base W is dequantized (its ||W|| the
# F32 base's within 1 %); a LoRA on GPT-2's wte; a modules_to_save copy is left out with a note; bad
# input (a missing adapter directory, adapters of different bases, bad --layers / --targets, a GGUF
# adapter without --model) exits 1 with ONE stderr line and leaves no output directory. With ../shared/data: two adapters trained here (r 2 and r 4, q,v) are compared.
# Usage: analyze.sh LORAC SOURCE_DIR
set -u
lorac=$1
fix=$2/tests/fixtures/analyze
gg=$2/tests/fixtures/llama/gguf
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
  ls "$T" | grep -q '\.tmp' && bad "$what: left a temporary directory: $(ls "$T")"
  [ ! -s "$T/out" ] || bad "$what: wrote to stdout: $(head -c 200 "$T/out")"
}

"$lorac" init-model --out "$T/m" --layers 1 --embd 16 --heads 2 --vocab 64 --positions 16 --seed 5 >/dev/null 2>&1 \
  || bad "init-model"
"$lorac" analyze --model "$T/m" --adapter "$fix/gpt2_r2" --adapter "$fix/gpt2_r3" --json --out "$T/figs" \
  >"$T/a.json" 2>"$T/err" || bad "analyze --json --out: $(cat "$T/err")"
j=$(cat "$T/a.json")
[ "$(grep -o '"name":' <<<"$j" | wc -l)" -eq 3 ] || bad "3 modules expected: $j"
for k in '"modules":' '"rank":2' '"singular_values":[' '"effective_rank":' '"energy":[' '"norm_delta":' \
         '"projection":{"delta":' '"weight":' '"random":' '"amplification":' '"phi":[[' '"phi_b":[[' \
         '"phi_random":[[' '"second":{"rank":3' '"slice":"q"' '"slice":"v"' '"name":"transformer.h.0.mlp.c_fc"'; do
  grep -qF -- "$k" <<<"$j" || bad "--json lacks $k"
done
grep -qF '"projection":{"delta":null' <<<"$j" && bad "W was given, projections should be numbers"
for f in transformer.h.0.attn.c_attn.q transformer.h.0.attn.c_attn.v transformer.h.0.mlp.c_fc; do
  for kind in spectrum phi; do
    [ -s "$T/figs/$f.$kind.svg" ] && grep -q '</svg>' "$T/figs/$f.$kind.svg" || bad "no figure $f.$kind.svg"
  done
done
cmp -s "$T/a.json" "$T/figs/analysis.json" || bad "figs/analysis.json differs from --json"
# the table (no --json); a second run replaces the figure directory as a whole
out=$("$lorac" analyze --model "$T/m" --adapter "$fix/gpt2_r2" --targets c_fc --out "$T/figs" 2>"$T/err") \
  || bad "table: $(cat "$T/err")"
grep -q '^transformer.h.0.mlp.c_fc ' <<<"$out" || bad "table lacks c_fc: $out"
[ "$(ls "$T/figs" | wc -l)" -eq 2 ] || bad "--out should hold c_fc's spectrum and analysis.json only: $(ls "$T/figs")"
# filters on the split: "v" keeps c_attn's v slice
n=$("$lorac" analyze --adapter "$fix/gpt2_r2" --targets v --json | grep -o '"name":' | wc -l)
[ "$n" -eq 1 ] || bad "--targets v: $n modules"

# GGUF adapter (Llama family) through its base: same spectrum as the adapter's PEFT directory
sv() { grep -o '"singular_values":\[[^]]*\]' | head -n 1; }
a=$("$lorac" analyze --model "$gg/gqa.f32.gguf" --adapter "$gg/gqa_rs.lorac.gguf" --targets q_proj --layers 0 --json) \
  || bad "GGUF adapter"
b=$("$lorac" analyze --model "$gg/gqa.f32.gguf" --adapter "$gg/gqa_rs/adapter" --targets q_proj --layers 0 --json) \
  || bad "PEFT adapter over a GGUF base"
[ -n "$a" ] && [ "$(sv <<<"$a" | cut -c1-60)" = "$(sv <<<"$b" | cut -c1-60)" ] \
  || bad "GGUF vs PEFT adapter spectra: $(sv <<<"$a") / $(sv <<<"$b")"
# a quantized base's W is dequantized: the Q8_0 copy's ||W||_F is the F32 base's within Q8_0's error
wn() { grep -o '"norm_weight":[0-9.e+-]*' | head -n 1 | cut -d: -f2; }
q=$("$lorac" analyze --model "$gg/gqa.q8_0.gguf" --adapter "$gg/gqa_rs/adapter" --layers 1 --targets v_proj --json 2>&1) \
  || bad "quantized base: $q"
f=$("$lorac" analyze --model "$gg/gqa.f32.gguf" --adapter "$gg/gqa_rs/adapter" --layers 1 --targets v_proj --json 2>&1)
awk -v a="$(wn <<<"$q")" -v b="$(wn <<<"$f")" 'BEGIN { d = a - b; exit !(b > 0 && (d < 0 ? -d : d) < 0.01 * b) }' \
  || bad "quantized base: ||W|| $(wn <<<"$q") vs F32 $(wn <<<"$f")"

# a LoRA on GPT-2's token embedding (lorac_written: q,v split + c_fc + wte) over the tiny GPT-2 fixture
peft=$2/tests/fixtures/peft
e=$("$lorac" analyze --model "$2/tests/fixtures/gpt2/tiny/base" --adapter "$peft/lorac_written" --targets wte --json) \
  || bad "embedding"
grep -qF '"name":"transformer.wte"' <<<"$e" && ! grep -qF '"delta":null' <<<"$e" || bad "embedding: $e"
# a modules_to_save copy is left out with a note; the LoRA modules are analysed
"$lorac" analyze --adapter "$peft/mts_wte" >/dev/null 2>"$T/err" || bad "mts_wte: $(cat "$T/err")"
grep -qF "1 tensor(s) that are not LoRA A/B" "$T/err" || bad "mts_wte note: $(cat "$T/err")"

expect_error "missing adapter" "adapter_config.json" "$T/x1" "$lorac" analyze --adapter "$T/nope" --out "$T/x1"
expect_error "mismatched adapters" "has no module" "$T/x2" \
  "$lorac" analyze --adapter "$fix/gpt2_r2" --adapter "$fix/llama_r4" --out "$T/x2" --json
expect_error "bad --layers" "--layers 'x'" "$T/x3" "$lorac" analyze --adapter "$fix/gpt2_r2" --layers x --out "$T/x3"
expect_error "--layers out of range" "no module in layer 9" "$T/x4" \
  "$lorac" analyze --adapter "$fix/gpt2_r2" --layers 9 --out "$T/x4"
expect_error "bad --targets" "'q_proj' matches no module" "$T/x5" \
  "$lorac" analyze --adapter "$fix/gpt2_r2" --targets q_proj --out "$T/x5"
expect_error "GGUF adapter without --model" "give --model" "$T/x6" \
  "$lorac" analyze --adapter "$gg/gqa_rs.lorac.gguf" --out "$T/x6"
expect_error "base of another shape" "another" "$T/x7" \
  "$lorac" analyze --model "$T/m" --adapter "$fix/llama_r4" --out "$T/x7"

# trained adapters (needs ../shared/data for a vocabulary and text)
DATA=$2/../shared/data
if [ -f "$DATA/gpt2-vocab/encoder.json" ] && [ -f "$DATA/e2e/train.txt" ]; then
  "$lorac" init-model --out "$T/g" --tokenizer-from "$DATA/gpt2-vocab" --layers 2 --embd 32 --heads 2 --positions 64 \
    --seed 3 >/dev/null 2>&1 || bad "init-model with a tokenizer"
  head -n 16 "$DATA/e2e/train.txt" >"$T/train.txt"
  for r in 2 4; do
    "$lorac" train --model "$T/g" --data "$T/train.txt" --steps 3 --lr 5e-2 --batch-size 4 --rank $r --out "$T/a$r" \
      --quiet >/dev/null 2>&1 || bad "train r $r"
  done
  out=$("$lorac" analyze --model "$T/g" --adapter "$T/a2" --adapter "$T/a4" 2>"$T/err") || bad "trained: $(cat "$T/err")"
  [ "$(grep -c '^transformer.h.[01].attn.c_attn.[qv] ' <<<"$out")" -eq 8 ] || bad "trained: 4 slices x 2 tables: $out"
else
  echo "note: ../shared/data is absent; the trained-adapter part did not run"
fi
exit $fail
