#!/usr/bin/env bash
# The Llama path end to end on the real SmolLM2-135M-Instruct (Q4_1 GGUF, fetched by
# tools/fetch_smollm2.sh; the test skips when it is not cached): perplexity of held-out English text
# (RTE sentences from ../shared/data) far below uniform; greedy chat generation equals the golden
# tokens (tests/fixtures/llama_gen/smollm2_greedy.txt); a LoRA trained on data/demo (chat format,
# loss on assistant turns) lowers the held-out loss; the adapter written as GGUF gives the PEFT
# adapter's loss; --init-adapter from the GGUF file trains as from the PEFT directory (bit for bit);
# --adapter DIR:0 is the base and DIR:1 the adapter; merge to GGUF (Q8_0) keeps the
# loss; bad inputs fail with one line.
set -u
L=$1
SRC=$2
G=${LORAC_SMOLLM2:-${XDG_CACHE_HOME:-$HOME/.cache}/lorac/SmolLM2-135M-Instruct.Q4_1.gguf}
if [ ! -s "$G" ]; then
  echo "SKIP: $G is absent (tools/fetch_smollm2.sh fetches it), so the SmolLM2 pipeline cannot run"
  exit 77
fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
check() { if eval "$1"; then ok; else bad "$2"; fi; }
expect_error() {
  local what=$1 needle=$2; shift 2
  "$@" >"$T/out" 2>"$T/err"; local rc=$?
  if [ $rc -ne 0 ] && [ "$(wc -l <"$T/err")" -eq 1 ] && grep -q -- "$needle" "$T/err"; then ok
  else bad "$what: rc=$rc stderr=$(cat "$T/err")"; fi
}
jloss() { sed 's/.*"loss": \([0-9.e+-]*\).*/\1/'; }
close() { awk -v a="$1" -v b="$2" -v r="$3" 'BEGIN{d=a-b; if (d<0) d=-d; exit !(d <= r*(b<0?-b:b))}'; }

# perplexity of English text: every token of 20 RTE premises scored
RTE="$SRC/../shared/data/glue/RTE/dev.tsv"
if [ -f "$RTE" ]; then
  awk -F'\t' 'NR>1 && NR<=21 {s=$2; gsub(/\\/,"\\\\",s); gsub(/"/,"\\\"",s); print "{\"text\": \"" s "\"}"}' "$RTE" >"$T/rte.jsonl"
  r=$($L eval --model "$G" --data "$T/rte.jsonl" --threads 2 --json) || bad "eval RTE"
  l=$(echo "$r" | jloss)
  echo "SmolLM2 on 20 RTE premises: $r"
  check "awk 'BEGIN{exit !($l < 4.0)}'" "English text loss $l is not far below uniform ln(49152) = 10.8"
fi

# greedy chat generation: the golden answer (transformers on the dequantized weights), with fp32 products
golden="$SRC/tests/fixtures/llama_gen/smollm2_greedy.txt"
$L generate --model "$G" --chat --prompt "$(sed -n 1p "$golden")" --max-new-tokens 32 --threads 2 --exact-products >"$T/greedy" \
  || bad "generate --chat"
got=$(sed ':a;N;$!ba;s/\n/\\n/g' "$T/greedy")
check "[ \"\$got\" = \"\$(sed -n 4p '$golden')\" ]" "greedy answer differs from the golden one: $got"

# train a few steps on the demo task; held-out loss falls
head -n 8 "$SRC/data/demo/eval.jsonl" >"$T/eval.jsonl"
base=$($L eval --model "$G" --data "$T/eval.jsonl" --threads 2 --json | jloss)
$L train --model "$G" --data "$SRC/data/demo/train.jsonl" --out "$T/a" --steps 4 --batch-size 4 --lr 3e-3 --warmup 1 \
  --targets q_proj,v_proj,down_proj --rank 4 --alpha 8 --label-smoothing 0 --max-seq-len 96 --threads 2 --quiet \
  --gguf-adapter "$T/a.gguf" || bad "train"
check "grep -q 'base_model.model.model.layers.29.mlp.down_proj.lora_B.weight' <($L inspect '$T/a/adapter_model.safetensors')" "PEFT names"
tuned=$($L eval --model "$G" --adapter "$T/a" --data "$T/eval.jsonl" --threads 2 --json | jloss)
echo "demo eval loss: base $base, after 4 steps $tuned"
check "awk 'BEGIN{exit !($tuned < $base)}'" "held-out loss did not fall ($base -> $tuned)"
g=$($L eval --model "$G" --adapter "$T/a.gguf" --data "$T/eval.jsonl" --threads 2 --json | jloss)
check "close $g $tuned 1e-4" "GGUF adapter loss $g != PEFT adapter loss $tuned"
# --init-adapter reads a GGUF adapter as every --adapter does: one step from it = one step from the PEFT directory
for src in a:dir a.gguf:gguf; do
  $L train --model "$G" --data "$T/eval.jsonl" --out "$T/cont_${src#*:}" --init-adapter "$T/${src%:*}" --steps 1 --batch-size 4 \
    --lr 1e-3 --warmup 0 --no-shuffle --max-seq-len 96 --threads 2 --quiet || bad "train --init-adapter ${src%:*}"
done
check "cmp -s '$T/cont_dir/adapter_model.safetensors' '$T/cont_gguf/adapter_model.safetensors'" \
  "one step from the GGUF adapter differs from one step from its PEFT directory"
check "! cmp -s '$T/cont_dir/adapter_model.safetensors' '$T/a/adapter_model.safetensors'" "--init-adapter: the step changed nothing"
z=$($L eval --model "$G" --adapter "$T/a:0" --data "$T/eval.jsonl" --threads 2 --json | jloss)
check "close $z $base 1e-5" "adapter at scale 0 ($z) is not the base ($base)"
o=$($L eval --model "$G" --adapter "$T/a:1" --data "$T/eval.jsonl" --threads 2 --json | jloss)
check "close $o $tuned 1e-5" "adapter at scale 1 ($o) is not the adapter ($tuned)"
head -n 3 "$SRC/data/demo/test.jsonl" >"$T/test.jsonl"
$L generate --model "$G" --adapter "$T/a" --chat --data "$T/test.jsonl" --max-new-tokens 4 --threads 2 >"$T/gen" \
  || bad "generate --data --chat"
check "[ \$(wc -l <'$T/gen') -eq 3 ]" "generate --data printed $(wc -l <"$T/gen") lines for 3 prompts"

# merge into a Q8_0 GGUF: about the adapter's loss (re-quantized)
$L merge --model "$G" --adapter "$T/a" --out "$T/m.gguf" --type q8_0 2>/dev/null || bad "merge --type q8_0"
ml=$($L eval --model "$T/m.gguf" --data "$T/eval.jsonl" --threads 2 --json | jloss)
echo "merged Q8_0 eval loss $ml (adapter on Q4_1: $tuned)"
check "close $ml $tuned 0.03" "merged loss $ml is far from the adapter's $tuned"

# no adapter: the base converted; F32 holds the Q4_1 weights exactly, so the loss stays the base's
$L merge --model "$G" --out "$T/f32.gguf" --type f32 2>/dev/null || bad "merge (convert) --type f32"
cl=$($L eval --model "$T/f32.gguf" --data "$T/eval.jsonl" --threads 2 --json | jloss)
check "close $cl $base 0.0005" "converted F32 loss $cl differs from the Q4_1 base's $base"
rm -f "$T/f32.gguf"
# ... and as a Hugging Face directory: the tokenizer travels as tokenizer.json (same ids), the loss stays
$L merge --model "$G" --out "$T/hf" 2>/dev/null || bad "merge (convert) to a directory"
check "[ -s '$T/hf/tokenizer.json' ] && [ -s '$T/hf/tokenizer_config.json' ]" "the directory lacks tokenizer.json"
$L tokenize --model "$G" --file "$T/eval.jsonl" --lines >"$T/ids_gguf" || bad "tokenize the GGUF"
$L tokenize --model "$T/hf" --file "$T/eval.jsonl" --lines >"$T/ids_hf" || bad "tokenize the directory"
check "[ -s '$T/ids_hf' ] && cmp -s '$T/ids_gguf' '$T/ids_hf'" "the directory's tokenizer gives other ids than the GGUF's"
hl=$($L eval --model "$T/hf" --data "$T/eval.jsonl" --threads 2 --json | jloss)
check "close $hl $base 0.0005" "the converted directory's loss $hl differs from the Q4_1 base's $base"
rm -rf "$T/hf"

# bad input: one line, non-zero exit
head -c 3000000 "$G" >"$T/trunc.gguf"
expect_error "truncated GGUF" "trunc.gguf" $L eval --model "$T/trunc.gguf" --data "$T/eval.jsonl"
expect_error "adapter of another model" "adapter" $L eval --model "$G" --adapter "$SRC/tests/fixtures/llama/gqa/adapter" --data "$T/eval.jsonl"
expect_error "GPT-2 target names on Llama" "--targets" $L train --model "$G" --data "$T/eval.jsonl" --out "$T/x" --targets c_attn --steps 1
check "[ ! -e '$T/x' ]" "a failed train left an output directory"
expect_error "unknown merge type" "--type" $L merge --model "$G" --adapter "$T/a" --out "$T/y.gguf" --type q3_z
expect_error "unknown --ngram-unit" "--ngram-unit" $L generate --model "$G" --prompt hi --ngram-unit letters
printf '{"messages": [{"role": "user", "content": "hi"}]}\n' >"$T/noasst.jsonl"
expect_error "chat data without an assistant turn" "noasst.jsonl" $L train --model "$G" --data "$T/noasst.jsonl" --out "$T/x" --steps 1
printf '{"messages": [{"role": "robot", "content": "hi"}]}\n' >"$T/role.jsonl"
expect_error "chat data with an unknown role" "role.jsonl:1" $L eval --model "$G" --data "$T/role.jsonl"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
