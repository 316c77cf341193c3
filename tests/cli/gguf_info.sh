#!/usr/bin/env bash
# lorac gguf-info: prints header, key/values and tensor infos of a valid file (exit 0); for every
# malformed file in tests/fixtures/gguf/bad/ exits non-zero with ONE stderr line naming the file and
# containing the fragment listed in bad/expected.txt. Usage: gguf_info.sh LORAC SOURCE_DIR
set -u
lorac=$1
src=$2
fix=$src/tests/fixtures/gguf
fail=0
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
err() { echo "FAIL: $*"; fail=1; }

out=$("$lorac" gguf-info "$fix/tiny.gguf") || err "tiny.gguf: exit $?"
for want in "GGUF v3, 5 key/values, 2 tensors, alignment 32" \
            'general.architecture                     str      "llama"' \
            "llama.context_length                     u32      128" \
            'tokenizer.ggml.tokens                    arr[str] [4] ["<s>", "a", "b", "ab"]' \
            "tok.weight                               Q8_0   [32, 2]" \
            "norm.weight                              F32    [8]" \
            "tensor types: F32 1 Q8_0 1; 72 elements in 100 bytes"; do
  grep -qF -- "$want" <<<"$out" || err "tiny.gguf output lacks: $want"
done

# array and string cut-offs
out=$("$lorac" gguf-info "$fix/quants.gguf" --items 2 --chars 3) || err "quants.gguf: exit $?"
grep -qF 'meta.arr_i32                             arr[i32] [3] [1, -2, ...]' <<<"$out" || err "--items 2 not applied"
grep -qF '"h'$'\xc3\xa9''"...(12 bytes)' <<<"$out" || err "--chars 3 not applied"
grep -qF "alignment 64" <<<"$out" || err "quants.gguf alignment"

# a lorac-written GGUF LoRA adapter (llama.cpp's layout: lora_a ne=[n_in, r], lora_b ne=[r, n_out])
ad=$src/tests/fixtures/llama/gguf/gqa_rs.lorac.gguf
out=$("$lorac" gguf-info "$ad") || err "gqa_rs.lorac.gguf: exit $?"
for want in 'general.type                             str      "adapter"' \
            'adapter.lora.alpha                       f32      16' \
            "blk.0.attn_q.weight.lora_a               F32    [32, 4]" \
            "blk.1.attn_output.weight.lora_b          F32    [2, 32]"; do
  grep -qF -- "$want" <<<"$out" || err "gqa_rs.lorac.gguf output lacks: $want"
done

n=0
while IFS=$'\t' read -r file frag; do
  case $file in ''|'#'*) continue ;; esac
  n=$((n + 1))
  if "$lorac" gguf-info "$fix/bad/$file" >/dev/null 2>"$tmp"; then
    err "$file: accepted"
    continue
  fi
  lines=$(wc -l <"$tmp")
  msg=$(cat "$tmp")
  [ "$lines" -eq 1 ] || err "$file: $lines lines of error output: $msg"
  grep -qF -- "$fix/bad/$file" <<<"$msg" || err "$file: message does not name the file: $msg"
  grep -qF -- "$frag" <<<"$msg" || err "$file: message lacks '$frag': $msg"
done <"$fix/bad/expected.txt"
[ "$n" -ge 15 ] || err "only $n malformed files listed"

"$lorac" gguf-info "$fix/no-such.gguf" 2>/dev/null && err "missing file accepted"
"$lorac" gguf-info 2>/dev/null && err "no FILE accepted"
"$lorac" gguf-info "$fix/tiny.gguf" --bogus 2>/dev/null && err "unknown option accepted"
"$lorac" gguf-info --help | grep -q "usage: lorac gguf-info" || err "--help"

# the real model, when cached (tools/gguf_fixtures.py --fetch-smollm2)
model=${LORAC_CACHE:-$HOME/.cache/lorac}/SmolLM2-135M-Instruct.Q4_1.gguf
if [ -r "$model" ]; then
  out=$("$lorac" gguf-info "$model") || err "smollm2: exit $?"
  for want in "272 tensors" 'general.architecture                     str      "llama"' \
              "tokenizer.ggml.tokens                    arr[str] [49152]" "tensor types: F32 61 Q4_1 210 Q8_0 1"; do
    grep -qF -- "$want" <<<"$out" || err "smollm2 output lacks: $want"
  done
else
  echo "note: $model absent; real-model check skipped"
fi

[ $fail -eq 0 ] && echo "gguf-info: all checks passed"
exit $fail
