#!/usr/bin/env bash
# bench/beam.sh — `lorac generate --data FILE --preset e2e` (the paper's beam search, 10 beams) over
# the first INPUTS distinct E2E test inputs: an OLD lorac (e.g. one built from 9e258c4^, before the
# direct int8 decode products), this lorac one input at a time (--batch-inputs 1) and this lorac with
# N inputs in flight (--batch-inputs N, each of BATCHES), in alternating rounds.
#
#   OLD=/tmp/build-old/lorac bench/beam.sh
#
# Prints each run's wall and user seconds, then per variant the medians, inputs/s and the ratios
# against OLD and against --batch-inputs 1, and how many output lines differ from --batch-inputs 1
# (batched runs must differ in none: the same hypotheses bit for bit; OLD's fp32 products may).
#
# Knobs (environment): LORAC (build/lorac), OLD (unset: no old row), MODEL (SmolLM2 Q4_1),
# ADAPTER (none), DATA (../shared/data/e2e/test.txt or /work/shared/data/e2e/test.txt), INPUTS (48),
# BATCHES ("4 8 16"), THREADS (2), ROUNDS (3), OUT (a directory for the outputs).
set -u
cd "$(dirname "$0")/.."
LORAC=${LORAC:-build/lorac}
OLD=${OLD:-}
MODEL=${MODEL:-$HOME/.cache/lorac/SmolLM2-135M-Instruct.Q4_1.gguf}
ADAPTER=${ADAPTER:-}
DATA=${DATA:-../shared/data/e2e/test.txt}
[ -s "$DATA" ] || DATA=/work/shared/data/e2e/test.txt
INPUTS=${INPUTS:-48}
BATCHES=${BATCHES:-4 8 16}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/lorac-beam.XXXXXX")}
mkdir -p "$OUT"
RUN=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE)
[ -x "$LORAC" ] || { echo "bench/beam.sh: $LORAC not found (make)" >&2; exit 2; }
[ -s "$MODEL" ] || { echo "bench/beam.sh: $MODEL is absent (tools/fetch_smollm2.sh)" >&2; exit 2; }
[ -s "$DATA" ] || { echo "bench/beam.sh: no E2E test set at $DATA" >&2; exit 2; }
# the first INPUTS distinct contexts, every line of each (generate --data decodes each context once)
awk -F'[|][|]' -v n="$INPUTS" '!($1 in seen) { seen[$1] = 1; k++ } k <= n' "$DATA" >"$OUT/inputs.txt"
ADA=()
[ -n "$ADAPTER" ] && ADA=(--adapter "$ADAPTER")
echo "bench/beam.sh: $(basename "$MODEL")${ADAPTER:+ + $ADAPTER}, $INPUTS inputs, --preset e2e, $THREADS threads," \
  "$ROUNDS rounds; load $(cut -d' ' -f1-3 /proc/loadavg)"
grep -m1 'model name' /proc/cpuinfo | sed 's/^/  /'
echo "  $LORAC generate --model $MODEL ${ADA[*]} --data $OUT/inputs.txt --preset e2e --threads $THREADS --batch-inputs N"

VARIANTS=(b1)
for b in $BATCHES; do VARIANTS+=("b$b"); done
[ -n "$OLD" ] && VARIANTS=(old "${VARIANTS[@]}")
run() { # VARIANT ROUND: one timed run, its output in OUT/VARIANT.txt
  local v=$1 bin=$LORAC extra=()
  case $v in old) bin=$OLD ;; b*) extra=(--batch-inputs "${v#b}") ;; esac
  /usr/bin/time -f '%e %U' -o "$OUT/$v.$2.time" "${RUN[@]}" "$bin" generate --model "$MODEL" "${ADA[@]}" \
    --data "$OUT/inputs.txt" --preset e2e --threads "$THREADS" "${extra[@]}" >"$OUT/$v.txt" 2>"$OUT/$v.err" ||
    { echo "bench/beam.sh: $v failed: $(tail -n 2 "$OUT/$v.err")" >&2; exit 1; }
  echo "  round $2 $v: wall $(cut -d' ' -f1 "$OUT/$v.$2.time") s, user $(cut -d' ' -f2 "$OUT/$v.$2.time") s"
}
for r in $(seq 1 "$ROUNDS"); do
  for v in "${VARIANTS[@]}"; do run "$v" "$r"; done
done
python3 - "$OUT" "$INPUTS" "$ROUNDS" "${VARIANTS[@]}" <<'EOF'
import statistics, sys
out, n, rounds, variants = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
med = {}
for v in variants:
    t = [open(f"{out}/{v}.{r}.time").read().split() for r in range(1, rounds + 1)]
    med[v] = (statistics.median(float(x[0]) for x in t), statistics.median(float(x[1]) for x in t))
ref = open(f"{out}/b1.txt").read().splitlines()
print("| variant | wall s | user s | inputs/s | vs old (wall) | vs batch 1 (wall) | lines differing from batch 1 |")
print("|---|---|---|---|---|---|---|")
for v in variants:
    w, u = med[v]
    lines = open(f"{out}/{v}.txt").read().splitlines()
    diff = sum(a != b for a, b in zip(lines, ref)) + abs(len(lines) - len(ref))
    old = f"{med['old'][0] / w:.2f}x" if "old" in med else "-"
    print(f"| {v} | {w:.1f} | {u:.1f} | {n / w:.2f} | {old} | {med['b1'][0] / w:.2f}x | {diff} of {len(ref)} |")
EOF
echo "  load after: $(cut -d' ' -f1-3 /proc/loadavg)"
