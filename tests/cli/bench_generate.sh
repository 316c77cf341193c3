#!/usr/bin/env bash
# lorac bench generate on a tiny random Llama shape: --batch B decodes B sequences together (the JSON
# says so, with positive prefill and decode tokens/s for base, merged and unmerged), --exact-products
# reports the dequantized fp32 products, --adapters K adds a mixed batch of K adapters, and a bad
# --batch or --adapters fails with one line. Speed itself is
# measured in bench/, never here.
# Usage: bench_generate.sh LORAC SOURCE_DIR
set -u
lorac=$1
fail=0
err() { echo "FAIL: $*"; fail=1; }
shape=(--model-type llama --layers 2 --embd 64 --heads 4 --kv-heads 2 --vocab 256 --positions 64 --prompt 8 --new 4
  --reps 1 --threads 1 --json)

out=$("$lorac" bench generate "${shape[@]}" --batch 3) || err "bench generate --batch 3 exits non-zero"
grep -q '"batch": 3' <<<"$out" || err "no batch 3 in: $out"
grep -q '"direct_products": true' <<<"$out" || err "direct products not on by default: $out"
n=$(grep -o '"decode_tokens_per_s": [0-9.]*' <<<"$out" | awk '$2 > 0' | wc -l)
[ "$n" -eq 3 ] || err "want 3 positive decode speeds (base, merged, unmerged): $out"
out=$("$lorac" bench generate "${shape[@]}" --exact-products) || err "--exact-products exits non-zero"
grep -q '"direct_products": false' <<<"$out" || err "--exact-products not reported: $out"
out=$("$lorac" bench generate "${shape[@]}" --batch 4 --adapters 3) || err "--adapters 3 exits non-zero"
grep -q '"adapters": 3, "mixed": {"prefill_tokens_per_s": [0-9.]*, "decode_tokens_per_s": [1-9]' <<<"$out" ||
  err "no positive mixed-batch speed for 3 adapters: $out"
e=$("$lorac" bench generate "${shape[@]}" --adapters -1 2>&1 >/dev/null)
[ $? -ne 0 ] && [ "$(wc -l <<<"$e")" -eq 1 ] || err "--adapters -1: $e"
e=$("$lorac" bench generate "${shape[@]}" --batch 0 2>&1 >/dev/null); rc=$?
[ $rc -ne 0 ] || err "--batch 0 accepted"
[ "$(wc -l <<<"$e")" -eq 1 ] && grep -q -- '--batch' <<<"$e" || err "--batch 0 message: $e"
[ $fail -eq 0 ] && echo "bench generate: --batch, --exact-products, --adapters and a bad --batch as expected"
exit $fail
