#!/usr/bin/env bash
# tools/glue_runs.sh — the GLUE table of docs/glue.md: every task x mode on the full training set,
# scored on the full dev set, one `lorac train --task` run each (its --json line kept).
#
#   tools/glue_runs.sh OUTDIR            (all-MiniLM-L6-v2 from tools/fetch_minilm.sh)
#
# Knobs (environment): LORAC (build/lorac), MODEL (~/.cache/lorac/all-MiniLM-L6-v2), GLUE
# (../shared/data/glue), TASKS ("rte mrpc stsb cola sst2"), MODES ("lora head full"), EPOCHS
# (per task, "rte=3 mrpc=3 stsb=3 cola=3 sst2=1"), THREADS (nproc), EXTRA (more train flags).
# Each run: the trainer's defaults for a classifier (batch 32, AdamW, warm-up 6 %, linear decay,
# max length 128, seed 42; lr 5e-4 LoRA r 8 alpha 16 on query,value / 2e-3 head only / 5e-5 full).
# Writes OUTDIR/<task>-<mode>.json (scores + seconds) and OUTDIR/<task>-<mode>.log, then a
# Markdown table on stdout. Not part of `make test`: it takes hours on two cores.
set -u
cd "$(dirname "$0")/.."
OUT=${1:?usage: tools/glue_runs.sh OUTDIR}
LORAC=${LORAC:-build/lorac}
MODEL=${MODEL:-$HOME/.cache/lorac/all-MiniLM-L6-v2}
GLUE=${GLUE:-../shared/data/glue}
TASKS=${TASKS:-"rte mrpc stsb cola sst2"}
MODES=${MODES:-"lora head full"}
EPOCHS=${EPOCHS:-"rte=3 mrpc=3 stsb=3 cola=3 sst2=1"}
THREADS=${THREADS:-$(nproc 2>/dev/null || echo 1)}
mkdir -p "$OUT"
dir_of() { case $1 in rte) echo RTE;; mrpc) echo MRPC;; stsb) echo STS-B;; cola) echo CoLA;; sst2) echo SST-2;;
           qnli) echo QNLI;; qqp) echo QQP;; mnli) echo MNLI;; *) echo "$1";; esac; }
epochs_of() { for kv in $EPOCHS; do [ "${kv%%=*}" = "$1" ] && { echo "${kv#*=}"; return; }; done; echo 3; }
for task in $TASKS; do
  for mode in $MODES; do
    flags=()
    case $mode in head) flags=(--head-only);; full) flags=(--full-ft);; esac
    name=$task-$mode
    [ -s "$OUT/$name.json" ] && continue # done in an earlier call
    start=$(date +%s)
    # shellcheck disable=SC2086
    if "$LORAC" train --task "glue-$task" --model "$MODEL" --data "$GLUE/$(dir_of "$task")" --out "$OUT/$name.out" \
        --epochs "$(epochs_of "$task")" --threads "$THREADS" --json --quiet "${flags[@]}" ${EXTRA:-} \
        >"$OUT/$name.tmp" 2>"$OUT/$name.log"; then
      end=$(date +%s)
      sed "s/}\$/, \"wall_s\": $((end - start)), \"load\": \"$(cut -d' ' -f1-3 /proc/loadavg)\"}/" "$OUT/$name.tmp" >"$OUT/$name.json"
      rm -rf "$OUT/$name.out" "$OUT/$name.tmp"
    else
      echo "tools/glue_runs.sh: $name failed: $(tail -1 "$OUT/$name.log")" >&2
    fi
  done
done
echo "| task | mode | scores | wall s | load |"
echo "|---|---|---|---|---|"
for task in $TASKS; do for mode in $MODES; do
  [ -s "$OUT/$task-$mode.json" ] && echo "| $task | $mode | $(cat "$OUT/$task-$mode.json") |"
done; done
