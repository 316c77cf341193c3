#!/usr/bin/env bash
# The GPT-2 pipeline end to end on real E2E lines with the real GPT-2 tokenizer (from ../shared) and a
# small random checkpoint made by `lorac init-model`: train (loss falls; eval loss on held-out lines
# falls), --resume reproduces an uninterrupted run's losses exactly, PEFT layout written, beam search
# decodes, merge gives the same eval loss as base + adapter, and bad inputs fail cleanly.
set -u
L=$1
SRC=$2
DATA="$SRC/../shared/data"
if [ ! -f "$DATA/gpt2-vocab/encoder.json" ] || [ ! -f "$DATA/e2e/train.txt" ]; then
  echo "SKIP: ../shared/data is absent, so the GPT-2 pipeline test (real vocabulary, E2E data) cannot run"
  exit 77
fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
check() { if eval "$1"; then ok; else bad "$2"; fi; }
# one error line naming $2 on stderr and a non-zero exit
expect_error() {
  local what=$1 needle=$2; shift 2
  "$@" >"$T/out" 2>"$T/err"; local rc=$?
  if [ $rc -ne 0 ] && [ "$(wc -l <"$T/err")" -eq 1 ] && grep -q -- "$needle" "$T/err"; then ok
  else bad "$what: rc=$rc stderr=$(cat "$T/err")"; fi
}

$L init-model --out "$T/m" --tokenizer-from "$DATA/gpt2-vocab" --layers 2 --embd 32 --heads 2 --positions 128 --seed 1 \
  || { echo "FAIL: init-model"; exit 1; }
head -n 96 "$DATA/e2e/train.txt" >"$T/train.txt"
head -n 24 "$DATA/e2e/valid.txt" >"$T/valid.txt"
opts=(--model "$T/m" --data "$T/train.txt" --steps 12 --warmup 2 --lr 5e-3 --batch-size 4 --rank 4 --alpha 32
      --lora-dropout 0.1 --threads 2 --quiet)

base=$($L eval --model "$T/m" --data "$T/valid.txt" --json) || bad "eval base"
$L train "${opts[@]}" --out "$T/a" --eval-data "$T/valid.txt" --eval-every 6 || bad "train"
for f in adapter_config.json adapter_model.safetensors train_log.jsonl loss.svg checkpoint.safetensors; do
  check "[ -s '$T/a/$f' ]" "train wrote no $f"
done
check "grep -q '\"fan_in_fan_out\": true' '$T/a/adapter_config.json'" "PEFT config lacks fan_in_fan_out"
check "$L inspect '$T/a/adapter_model.safetensors' | grep -q 'base_model.model.transformer.h.1.attn.c_attn.lora_B.weight'" "PEFT tensor names"
first=$(head -n 1 "$T/a/train_log.jsonl" | sed 's/.*"loss":\([0-9.e+-]*\).*/\1/')
last=$(grep '"loss"' "$T/a/train_log.jsonl" | tail -n 1 | sed 's/.*"loss":\([0-9.e+-]*\).*/\1/')
check "awk 'BEGIN{exit !($last < $first)}'" "training loss did not fall ($first -> $last)"
tuned=$($L eval --model "$T/m" --adapter "$T/a" --data "$T/valid.txt" --json) || bad "eval adapter"
bl=$(echo "$base" | sed 's/.*"loss": \([0-9.e+-]*\).*/\1/'); tl=$(echo "$tuned" | sed 's/.*"loss": \([0-9.e+-]*\).*/\1/')
check "awk 'BEGIN{exit !($tl < $bl)}'" "held-out loss did not fall ($bl -> $tl)"

# --resume: stop after 5 steps, resume to 12; the losses equal the uninterrupted run's exactly
$L train "${opts[@]}" --out "$T/r" --stop-after 5 || bad "train --stop-after"
$L train "${opts[@]}" --out "$T/r" --resume || bad "train --resume"
grep -o '"loss":[^,]*' "$T/a/train_log.jsonl" >"$T/l1"
grep -o '"loss":[^,]*' "$T/r/train_log.jsonl" >"$T/l2"
check "[ \$(wc -l <'$T/l2') -eq 12 ] && cmp -s '$T/l1' '$T/l2'" "resumed losses differ from the uninterrupted run"
check "cmp -s '$T/a/adapter_model.safetensors' '$T/r/adapter_model.safetensors'" "resumed adapter differs"

# generation: greedy and the paper's beam search preset decode one line per distinct context
head -n 6 "$DATA/e2e/test.txt" >"$T/test.txt"
n_ctx=$(awk -F'[|][|]' '{print $1}' "$T/test.txt" | sort -u | wc -l)
$L generate --model "$T/m" --adapter "$T/a" --data "$T/test.txt" --preset e2e --max-new-tokens 8 >"$T/gen" || bad "generate --preset e2e"
check "[ \$(wc -l <'$T/gen') -eq $n_ctx ]" "generate printed $(wc -l <"$T/gen") lines for $n_ctx contexts"
check "! grep -q '^ \\| \$' '$T/gen'" "a hypothesis line starts or ends with a space"
$L generate --model "$T/m" --adapter "$T/a" --prompt "name[The Eagle]" --max-new-tokens 5 >"$T/g1" || bad "generate --prompt"
check "[ \$(wc -l <'$T/g1') -eq 1 ]" "generate --prompt"

# merge: same eval loss as base + adapter (to 1e-5 relative)
$L merge --model "$T/m" --adapter "$T/a" --out "$T/merged" 2>/dev/null || bad "merge"
check "[ -s '$T/merged/encoder.json' ] && [ -s '$T/merged/config.json' ]" "merged dir lacks tokenizer or config"
ml=$($L eval --model "$T/merged" --data "$T/valid.txt" --json | sed 's/.*"loss": \([0-9.e+-]*\).*/\1/')
check "awk 'BEGIN{d=$ml-$tl; if (d<0) d=-d; exit !(d <= 1e-5*$tl)}'" "merged loss $ml != adapter loss $tl"

mkdir "$T/r_bad" && cp "$T/a/adapter_model.safetensors" "$T/r_bad/"
sed -e 's/"r": 4/"r": 8/' -e 's/"c_attn": 8/"c_attn": 16/' "$T/a/adapter_config.json" >"$T/r_bad/adapter_config.json"

# bad input: one line naming the file, non-zero exit, no output directory
printf 'no separator here\n' >"$T/bad.txt"
expect_error "data line without ||" "bad.txt:1" $L train "${opts[@]/$T\/train.txt/$T/bad.txt}" --out "$T/x1"
check "[ ! -e '$T/x1' ]" "a failed train left an output directory"
: >"$T/empty.txt"
expect_error "empty data file" "empty.txt" $L train --model "$T/m" --data "$T/empty.txt" --out "$T/x2" --quiet
check "[ ! -e '$T/x2' ]" "a failed train left an output directory"
# a GGUF adapter GPT-2 cannot have is refused before training, not after it
expect_error "GGUF adapter of a GPT-2 model" "GGUF" $L train --model "$T/m" --data "$T/train.txt" --out "$T/x4" --gguf-adapter "$T/x4.gguf" --steps 1
check "[ ! -e '$T/x4' ]" "a refused --gguf-adapter left an output directory"
expect_error "GGUF adapter name" "--gguf-adapter" $L train --model "$T/m" --data "$T/train.txt" --out "$T/x4" --gguf-adapter "$T/x4.bin" --steps 1
mkdir "$T/m2" && cp "$T/m"/* "$T/m2/" && sed -i 's/"n_embd": 32/"n_embd": 48/' "$T/m2/config.json"
expect_error "config disagrees with tensors" "shape" $L eval --model "$T/m2" --data "$T/valid.txt"
$L init-model --out "$T/m3" --layers 2 --embd 64 --heads 2 --vocab 100 --positions 64 >/dev/null 2>&1
expect_error "adapter for another shape" "adapter_model.safetensors" $L eval --model "$T/m3" --adapter "$T/a" --data "$T/valid.txt"
expect_error "merge of a wrong adapter" "adapter_model.safetensors" $L merge --model "$T/m3" --adapter "$T/a" --out "$T/x3"
check "[ ! -e '$T/x3' ]" "a failed merge left an output directory"
sed 's/"n_layer": 2/"n_layer": 3/' "$T/m/config.json" >"$T/m2/config.json"
expect_error "checkpoint missing a tensor" "missing tensor 'transformer.h.2" $L eval --model "$T/m2" --data "$T/valid.txt"
mkdir "$T/llama_adapter" && cp "$T/a/adapter_model.safetensors" "$T/llama_adapter/"
sed -e 's/"c_attn"/"q_proj"/' -e 's/"c_proj"/"v_proj"/' -e 's/"attn.c_proj"/"v_proj"/' "$T/a/adapter_config.json" >"$T/llama_adapter/adapter_config.json"
expect_error "adapter for another architecture" "match no GPT-2 module" $L generate --model "$T/m" --adapter "$T/llama_adapter" --prompt hi
expect_error "adapter of another rank" "shape" $L eval --model "$T/m" --adapter "$T/r_bad" --data "$T/valid.txt"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
