#!/usr/bin/env bash
# tools/e2e.sh — the LoRA paper's E2E NLG experiment on a real model (issue 20, part 3): LoRA on
# SmolLM2-135M-Instruct over the E2E training set, beam decoding of the whole test set with
# `--preset e2e` (630 distinct inputs, 4,693 references), scores with `lorac metrics` (the official
# METEOR when tools/fetch_meteor.sh has fetched its data). Not part of `make test`.
#
#   tools/e2e.sh OUTDIR            run (or continue) the experiment in OUTDIR
#   SMOKE=1 tools/e2e.sh OUTDIR    the same pipeline in minutes: 6 steps, 4 test inputs
#
# Restartable: training runs in stages of STAGE steps (`--stop-after`, then `--resume`), so an
# interrupted run continues from its last checkpoint when called again; decoding and scoring are
# redone only when their output is missing. Every output is written under a temporary name and
# renamed. Writes OUTDIR/adapter/ (PEFT layout), hyps.txt (one line per distinct test input, in
# test-set order), scores.json, time.txt (wall time, peak RSS of each stage) and results.md (the row
# for docs/e2e.md).
#
# Knobs (environment), with the defaults chosen for this model and a 3-hour budget on 2 cores
# (docs/e2e.md says why): LORAC (build/lorac), MODEL (~/.cache/lorac/SmolLM2-135M-Instruct.Q4_1.gguf,
# from tools/fetch_smollm2.sh; a directory, e.g. the f32 one `lorac merge` makes of it, works too),
# DECODE_MODEL (MODEL: the base the test set is decoded with), DATA (../shared/data/e2e), RANK (8),
# ALPHA (16), TARGETS (q_proj,v_proj), LR (1e-3), STEPS (4000), BATCH (8), WARMUP (200), SMOOTH (0.1,
# the paper's label smoothing), MAXLEN (128), STAGE (500 steps per training stage), THREADS (nproc), EVAL_LINES (240 validation
# lines, every EVAL_EVERY=500 steps), BATCH_INPUTS (the decoder's default when empty: inputs decoded
# together), TEST_INPUTS (all; a number keeps the first N distinct inputs), SHUFFLE_SEED (1: the
# training lines are taken in the order of OUTDIR/train.txt, a copy of train.txt shuffled by a
# Park-Miller generator in awk from this seed, read with --no-shuffle, so that another trainer can take
# the same batches: tools/e2e_overlay.sh), INIT (a PEFT adapter to start from, --init-adapter: its
# config gives rank, alpha and targets; default fresh layers from lorac's seed).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: tools/e2e.sh OUTDIR}
LORAC=${LORAC:-build/lorac}
MODEL=${MODEL:-$HOME/.cache/lorac/SmolLM2-135M-Instruct.Q4_1.gguf}
DECODE_MODEL=${DECODE_MODEL:-$MODEL}
DATA=${DATA:-../shared/data/e2e}
RANK=${RANK:-8} ALPHA=${ALPHA:-16} TARGETS=${TARGETS:-q_proj,v_proj} LR=${LR:-1e-3}
STEPS=${STEPS:-4000} BATCH=${BATCH:-8} WARMUP=${WARMUP:-200} SMOOTH=${SMOOTH:-0.1} MAXLEN=${MAXLEN:-128}
STAGE=${STAGE:-500} THREADS=${THREADS:-$(nproc 2>/dev/null || echo 2)}
EVAL_LINES=${EVAL_LINES:-240} EVAL_EVERY=${EVAL_EVERY:-500} TEST_INPUTS=${TEST_INPUTS:-all}
BATCH_INPUTS=${BATCH_INPUTS:-} SHUFFLE_SEED=${SHUFFLE_SEED:-1} INIT=${INIT:-}
if [ "${SMOKE:-0}" = 1 ]; then
  STEPS=6 STAGE=3 WARMUP=2 EVAL_LINES=24 EVAL_EVERY=3 TEST_INPUTS=4
fi
die() { echo "tools/e2e.sh: $*" >&2; exit 1; }
[ -x "$LORAC" ] || die "no lorac at $LORAC (make)"
[ -f "$MODEL" ] || [ -d "$MODEL" ] || die "no model at $MODEL (tools/fetch_smollm2.sh fetches it)"
[ -f "$DECODE_MODEL" ] || [ -d "$DECODE_MODEL" ] || die "no model at $DECODE_MODEL (DECODE_MODEL)"
for f in train valid test; do [ -f "$DATA/$f.txt" ] || die "no $DATA/$f.txt (../shared/data/e2e)"; done
mkdir -p "$OUT"
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
TIMEF="%e s wall, %M KiB peak RSS"

# ---------------------------------------------------------------- the test inputs
# the references of the first TEST_INPUTS distinct contexts (consecutive lines share a context)
if [ "$TEST_INPUTS" = all ]; then cp "$DATA/test.txt" "$OUT/test.txt"
else awk -F'\\|\\|' -v n="$TEST_INPUTS" '$1 != prev {k++; prev = $1} k <= n' "$DATA/test.txt" >"$OUT/test.txt"; fi
head -n "$EVAL_LINES" "$DATA/valid.txt" >"$OUT/valid.txt"
# the training order: x <- 16807 x mod (2^31 - 1) is exact in awk's doubles, so every awk gives it
awk -v seed="$SHUFFLE_SEED" 'BEGIN {x = seed % 2147483647; if (x < 1) x = 1}
  {x = (x * 16807) % 2147483647; printf "%010d\t%08d\t%s\n", x, NR, $0}' "$DATA/train.txt" |
  sort -t "$(printf '\t')" -k1,1n -k2,2n | cut -f3- >"$OUT/train.txt.tmp"
mv "$OUT/train.txt.tmp" "$OUT/train.txt"

# ---------------------------------------------------------------- 1. training, in stages
if [ -n "$INIT" ]; then layers=(--init-adapter "$INIT")
else layers=(--rank "$RANK" --alpha "$ALPHA" --targets "$TARGETS"); fi
train=(train --model "$MODEL" --data "$OUT/train.txt" --no-shuffle --out "$OUT/adapter" "${layers[@]}" --lr "$LR" --steps "$STEPS" --batch-size "$BATCH" --warmup "$WARMUP"
  --label-smoothing "$SMOOTH" --max-seq-len "$MAXLEN" --threads "$THREADS" --eval-data "$OUT/valid.txt"
  --eval-every "$EVAL_EVERY")
done_steps() { [ -f "$OUT/adapter/train_log.jsonl" ] && grep -c '"loss"' "$OUT/adapter/train_log.jsonl" || echo 0; }
while [ "$(done_steps)" -lt "$STEPS" ]; do
  at=$(done_steps)
  stop=$((at + STAGE < STEPS ? at + STAGE : STEPS))
  resume=()
  [ -f "$OUT/adapter/checkpoint.safetensors" ] && [ "$at" -gt 0 ] && resume=(--resume)
  echo "== training steps $((at + 1))..$stop of $STEPS"
  /usr/bin/time -f "train $((at + 1))-$stop: $TIMEF" -a -o "$OUT/time.txt" \
    "$LORAC" "${train[@]}" "${resume[@]}" --stop-after "$stop"
  [ "$(done_steps)" -gt "$at" ] || die "training made no progress (see above)"
done

# ---------------------------------------------------------------- 2. beam decoding of the test set
if [ ! -s "$OUT/hyps.txt" ]; then
  echo "== decoding $(awk -F'\\|\\|' '$1 != p {k++; p = $1} END {print k}' "$OUT/test.txt") test inputs (--preset e2e)"
  gen=(generate --model "$DECODE_MODEL" --adapter "$OUT/adapter" --data "$OUT/test.txt" --preset e2e --threads "$THREADS")
  [ -n "$BATCH_INPUTS" ] && gen+=(--batch-inputs "$BATCH_INPUTS")
  /usr/bin/time -f "decode: $TIMEF" -a -o "$OUT/time.txt" "$LORAC" "${gen[@]}" >"$OUT/hyps.txt.tmp"
  mv "$OUT/hyps.txt.tmp" "$OUT/hyps.txt"
fi

# ---------------------------------------------------------------- 3. scores
"$LORAC" metrics --refs "$OUT/test.txt" --hyps "$OUT/hyps.txt" --json >"$OUT/scores.json.tmp"
mv "$OUT/scores.json.tmp" "$OUT/scores.json"
"$LORAC" metrics --refs "$OUT/test.txt" --hyps "$OUT/hyps.txt" 2>&1 | grep -i meteor || true

# ---------------------------------------------------------------- 4. the results row
train_s=$(awk '/^train/ {s += $3} END {print s + 0}' "$OUT/time.txt")
train_rss=$(awk '/^train/ {if ($6 > m) m = $6} END {print int(m / 1024)}' "$OUT/time.txt")
dec_s=$(awk '/^decode/ {s = $2} END {print s + 0}' "$OUT/time.txt")
dec_rss=$(awk '/^decode/ {m = $5} END {print int(m / 1024)}' "$OUT/time.txt")
tok_s=$(awk -F'"tokens_per_s":' 'NF > 1 {split($2, a, /[,}]/); s += a[1]; n++} END {printf "%.0f", n ? s / n : 0}' \
  "$OUT/adapter/train_log.jsonl")
cfg=$OUT/adapter/adapter_config.json # rank and targets as trained (INIT's when given)
r=$(sed -n 's/^ *"r": *\([0-9]*\).*/\1/p' "$cfg")
targets=$(awk '/"target_modules"/ {on = 1; next} on && /\]/ {on = 0} on {gsub(/[ ",]/, ""); printf "%s%s", s, $0; s = ","}' "$cfg")
score() { sed -n "s/.*\"$1\": *\\([0-9.eE+-]*\\).*/\\1/p" "$OUT/scores.json"; }
{
  echo "| run | BLEU | NIST | METEOR | ROUGE-L | CIDEr | train | tokens/s | peak RSS | decode | peak RSS |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  decoded=; [ "$DECODE_MODEL" != "$MODEL" ] && decoded=", decoded with $(basename "$DECODE_MODEL")"
  printf '| lorac, %s, r %s on %s%s, %s steps of %s%s | %s | %s | %s | %s | %s | %.0f s | %s | %s MiB | %.0f s | %s MiB |\n' \
    "$(basename "$MODEL")" "$r" "$targets" "${INIT:+ from $(basename "$INIT")}" "$STEPS" "$BATCH" "$decoded" "$(score BLEU)" "$(score NIST)" "$(score METEOR)" \
    "$(score ROUGE_L)" "$(score CIDEr)" "$train_s" "$tok_s" "$train_rss" "$dec_s" "$dec_rss"
} >"$OUT/results.md.tmp"
mv "$OUT/results.md.tmp" "$OUT/results.md"
cat "$OUT/results.md"
