#!/usr/bin/env bash
# bench/mpi.sh — data-parallel `lorac train` on one machine: 2 ranks x 1 thread (mpirun) against
# 1 rank x 2 threads, on the GPT-2 small shape (12 layers, 768 wide, 12 heads, vocab 50257, random
# weights from `lorac init-model`, the GPT-2 tokenizer) with LoRA r 8 on q,v over E2E lines, and the
# bytes all-reduced per step.
#
#   bench/mpi.sh                     (uses build/lorac, built with MPI: `make deps && make`)
#
# Each configuration runs `lorac train --steps STEPS` and its tokens/s is the median of the per-step
# tokens_per_s in train_log.jsonl after WARMUP steps (global tokens over the step's wall time, the
# all-reduce included); the two alternate ROUNDS times per batch size and the table gives the median
# of each and the ratio. Knobs (environment): LORAC (build/lorac), BATCHES ("4 16": global batch
# sizes), STEPS (6), WARMUP (2), ROUNDS (3), RANK (8), OUT (a directory for the model and the logs;
# the model takes ~500 MB), MPIRUN_ARGS (extra mpirun flags; default --bind-to core), SHAPE (init-model's
# flags; SHAPE="--layers 2 --embd 64 --heads 4 --positions 128" checks the script in seconds).
# Not part of `make test` or CI: it takes minutes and measures the machine.
set -u
cd "$(dirname "$0")/.."

LORAC=${LORAC:-build/lorac}
BATCHES=${BATCHES:-"4 16"}
STEPS=${STEPS:-6}
WARMUP=${WARMUP:-2}
ROUNDS=${ROUNDS:-3}
RANK=${RANK:-8}
MPIRUN_ARGS=${MPIRUN_ARGS:---bind-to core}
SHAPE=${SHAPE:-"--layers 12 --embd 768 --heads 12 --positions 1024"}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/lorac-bench-mpi.XXXXXX")}
DATA=../shared/data
RUN=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE) # the user's environment, as bench/run.sh

if [ ! -x "$LORAC" ]; then echo "bench/mpi.sh: $LORAC not found; run \`make\` first" >&2; exit 1; fi
if ! command -v mpirun >/dev/null || "$LORAC" version | grep -q '^mpi: none'; then
    echo "bench/mpi.sh: needs mpirun and a lorac built with MPI (make deps, then make)" >&2
    exit 1
fi
if [ ! -f "$DATA/gpt2-vocab/encoder.json" ] || [ ! -f "$DATA/e2e/train.txt" ]; then
    echo "bench/mpi.sh: needs ../shared/data (GPT-2 vocabulary, E2E data)" >&2
    exit 1
fi
[ "$(id -u)" -eq 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mkdir -p "$OUT"
if [ ! -s "$OUT/m/model.safetensors" ]; then
    # shellcheck disable=SC2086
    "$LORAC" init-model --out "$OUT/m" --tokenizer-from "$DATA/gpt2-vocab" $SHAPE --seed 1 >/dev/null || exit 1
fi
head -n 2000 "$DATA/e2e/train.txt" >"$OUT/train.txt"

echo "lorac bench mpi: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $("$LORAC" version | grep '^mpi:')"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "model: init-model $SHAPE (vocab 50257), LoRA r $RANK on q,v, E2E lines; $STEPS steps, median tokens/s after $WARMUP; $ROUNDS rounds"
echo "logs in $OUT; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

# median of the per-step tokens/s of a log after the warm-up steps
log_tps() {
    grep -o '"tokens_per_s":[0-9.e+-]*' "$1" | cut -d: -f2 | tail -n +$((WARMUP + 1)) | sort -g |
        awk '{v[NR]=$1} END {if (NR == 0) print "nan"; else print (NR % 2 ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2)}'
}
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR]=$1} END {print (NR % 2 ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2)}'; }

fail=0
printf '%-6s %-22s %-22s %-8s %s\n' batch "2 ranks x 1 thread" "1 rank x 2 threads" ratio "bytes all-reduced/step"
for B in $BATCHES; do
    args=(train --model "$OUT/m" --data "$OUT/train.txt" --steps "$STEPS" --batch-size "$B" --rank "$RANK" --alpha 16
          --targets q,v --warmup 0)
    dp="" th="" bytes=""
    for r in $(seq 1 "$ROUNDS"); do
        # shellcheck disable=SC2086
        if ! "${RUN[@]}" mpirun $MPIRUN_ARGS -np 2 "$LORAC" "${args[@]}" --threads 1 --out "$OUT/dp$B" \
            >"$OUT/dp$B.out" 2>&1; then
            echo "mpirun failed: $(tail -3 "$OUT/dp$B.out")" >&2; fail=1; continue
        fi
        dp="$dp $(log_tps "$OUT/dp$B/train_log.jsonl")"
        bytes=$(sed -n 's/.*, \([0-9]*\) bytes all-reduced per step.*/\1/p' "$OUT/dp$B.out" | head -n 1)
        if ! "${RUN[@]}" "$LORAC" "${args[@]}" --threads 2 --out "$OUT/th$B" >"$OUT/th$B.out" 2>&1; then
            echo "lorac train failed: $(tail -3 "$OUT/th$B.out")" >&2; fail=1; continue
        fi
        th="$th $(log_tps "$OUT/th$B/train_log.jsonl")"
        echo "  batch $B round $r: 2x1 ${dp##* } tok/s, 1x2 ${th##* } tok/s (load $(cut -d' ' -f1 /proc/loadavg))" >&2
    done
    [ -n "$dp" ] && [ -n "$th" ] || continue
    mdp=$(echo "$dp" | median) mth=$(echo "$th" | median)
    printf '%-6s %-22s %-22s %-8s %s\n' "$B" "$mdp tok/s" "$mth tok/s" "$(awk "BEGIN{printf \"%.2f\", $mdp/$mth}")" "$bytes"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
exit $fail
