#!/usr/bin/env bash
# bench/glue.sh — lorac's GLUE fine-tuning beside PyTorch + PEFT (bench/glue_train.py), in one run.
#
#   bench/glue.sh            (an existing build/lorac; all-MiniLM-L6-v2 from tools/fetch_minilm.sh)
#
# Both train the same rows (the first ROWS of the task's train.tsv, in file order for PyTorch and
# shuffled by seed for lorac), LoRA r 8 alpha 16 dropout 0.1 on query,value with the head trained,
# batches of BATCH padded to their longest pair, at most LEN tokens, EPOCHS epochs, AdamW lr 5e-4,
# 6 % warm-up, clipping 1; then score the whole dev set. Reported per round: training rows/s (rows x
# epochs / training seconds: lorac's train_log elapsed_s, PyTorch's loop), evaluation rows/s (dev
# rows / its seconds), peak RSS (lorac: /usr/bin/time; PyTorch: ru_maxrss) and the dev score; then
# the medians of ROUNDS alternating rounds and the ratios. OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are
# unset for both commands (the kernel a user's machine picks; the one that ran is printed).
#
# Knobs (environment): LORAC (build/lorac), PYTHON (bench/.venv/bin/python), MODEL
# (~/.cache/lorac/all-MiniLM-L6-v2), GLUE (../shared/data/glue), TASK (sst2), ROWS (960), BATCH (16),
# LEN (64), EPOCHS (1), ROUNDS (3), THREADS (nproc), OUT (a directory for the raw JSON).
set -u
cd "$(dirname "$0")/.."
LORAC=${LORAC:-build/lorac}
PYTHON=${PYTHON:-bench/.venv/bin/python}
MODEL=${MODEL:-$HOME/.cache/lorac/all-MiniLM-L6-v2}
GLUE=${GLUE:-../shared/data/glue}
TASK=${TASK:-sst2}
ROWS=${ROWS:-960}
BATCH=${BATCH:-16}
LEN=${LEN:-64}
EPOCHS=${EPOCHS:-1}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-$(nproc 2>/dev/null || echo 1)}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/lorac-glue.XXXXXX")}
mkdir -p "$OUT"
RUN=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE)
case $TASK in sst2) D=SST-2;; mrpc) D=MRPC;; stsb) D=STS-B;; rte) D=RTE;; cola) D=CoLA;; *) echo "TASK $TASK?" >&2; exit 2;; esac
if [ "$TASK" = cola ]; then head -n "$ROWS" "$GLUE/$D/train.tsv" >"$OUT/train.tsv"
else head -n $((ROWS + 1)) "$GLUE/$D/train.tsv" >"$OUT/train.tsv"; fi
DEV=$GLUE/$D/dev.tsv
json() { "$PYTHON" -c "import json,sys; print(json.loads(sys.stdin.read())$1)"; }
echo "bench/glue.sh: $TASK, $ROWS rows x $EPOCHS epoch(s), batch $BATCH, max length $LEN, $THREADS threads; $(cut -d' ' -f1-3 /proc/loadavg)"
"${RUN[@]}" "$LORAC" version 2>/dev/null | sed 's/^/  /'
for r in $(seq 1 "$ROUNDS"); do
  rm -rf "$OUT/lorac$r"
  "${RUN[@]}" /usr/bin/time -f %M -o "$OUT/rss$r" "$LORAC" train --task "glue-$TASK" --model "$MODEL" --data "$OUT/train.tsv" \
    --eval-data "$DEV" --out "$OUT/lorac$r" --epochs "$EPOCHS" --batch-size "$BATCH" --max-seq-len "$LEN" --lr 5e-4 \
    --threads "$THREADS" --json --quiet >"$OUT/lorac$r.json" || { echo "lorac train failed" >&2; exit 1; }
  el=$(grep elapsed_s "$OUT/lorac$r/train_log.jsonl" | tail -1 | json '["elapsed_s"]')
  ev=$(json '["seconds"]' <"$OUT/lorac$r.json"); n=$(json '["n"]' <"$OUT/lorac$r.json")
  sc=$("$PYTHON" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d.get("accuracy", d.get("pearson")))' "$OUT/lorac$r.json")
  awk -v r="$r" -v rows="$ROWS" -v ep="$EPOCHS" -v el="$el" -v ev="$ev" -v n="$n" -v rss="$(cat "$OUT/rss$r")" -v sc="$sc" \
    'BEGIN { printf "round %d lorac: train %.1f rows/s (%.1f s), eval %.1f rows/s, peak RSS %.0f MiB, dev %s\n", r, rows*ep/el, el, n/ev, rss/1024, sc }' \
    | tee -a "$OUT/summary"
  "${RUN[@]}" "$PYTHON" bench/glue_train.py --model "$MODEL" --train "$OUT/train.tsv" --dev "$DEV" --task "$TASK" \
    --batch "$BATCH" --max-len "$LEN" --epochs "$EPOCHS" --threads "$THREADS" --json >"$OUT/torch$r.json" \
    || { echo "bench/glue_train.py failed" >&2; exit 1; }
  "$PYTHON" - "$OUT/torch$r.json" "$r" <<'PY' | tee -a "$OUT/summary"
import json, sys
j = json.load(open(sys.argv[1]))
print("round %s torch: train %.1f rows/s (%.1f s), eval %.1f rows/s, peak RSS %.0f MiB, dev %s" % (
    sys.argv[2], j["train_rows_per_s"], j["train_s"], j["eval_rows_per_s"], j["peak_rss_mb"],
    j.get("accuracy", j.get("pearson"))))
PY
done
"$PYTHON" - "$OUT/summary" <<'PY'
import re, statistics, sys
rows = {"lorac": [], "torch": []}
for line in open(sys.argv[1]):
    m = re.match(r"round \d+ (\w+): train ([\d.]+) rows/s .* eval ([\d.]+) rows/s, peak RSS (\d+) MiB", line)
    if m: rows[m.group(1)].append([float(x) for x in m.groups()[1:]])
med = {k: [statistics.median(c) for c in zip(*v)] for k, v in rows.items() if v}
l, t = med["lorac"], med["torch"]
print("medians: lorac train %.1f rows/s, eval %.1f rows/s (%.2fx its training), %.0f MiB" % (l[0], l[1], l[1] / l[0], l[2]))
print("         torch train %.1f rows/s, eval %.1f rows/s, %.0f MiB" % tuple(t))
print("ratio lorac/torch: training %.2fx, evaluation %.2fx, memory %.2fx" % (l[0] / t[0], l[1] / t[1], l[2] / t[2]))
PY
echo "raw JSON in $OUT"
