#!/usr/bin/env bash
# bench/decode.sh — lorac's prefill and decode beside llama.cpp's llama-bench on the same GGUF file,
# in alternating rounds (issue 19's side-by-side).
#
#   bench/decode.sh          (an existing build/lorac; llama.cpp built by tools/llamacpp_check.sh)
#
# Per round: `lorac bench generate --model FILE --prompt P --new N --threads T --json` (base, merged
# and unmerged adapter, LoRA r 8 on the family's default targets) and `llama-bench -m FILE -t T -p P
# -n N -r REPS -o json` (pp = prompt processing, tg = generation), both with OPENBLAS_CORETYPE and
# OPENBLAS_L2_SIZE unset. Prints every round and the medians over ROUNDS rounds with lorac/llama.cpp
# ratios. BATCH=8 adds lorac's decode of 8 sequences at once (llama-bench has no such row).
#
# Knobs (environment): LORAC (build/lorac), MODEL (~/.cache/lorac/SmolLM2-135M-Instruct.Q4_1.gguf),
# LLAMACPP_BIN (~/.cache/lorac/llama.cpp/build/bin), P (128), N (64), REPS (3), THREADS (nproc),
# ROUNDS (3), BATCH (1), OUT (a directory for the raw JSON).
set -u
cd "$(dirname "$0")/.."
LORAC=${LORAC:-build/lorac}
MODEL=${MODEL:-$HOME/.cache/lorac/SmolLM2-135M-Instruct.Q4_1.gguf}
BIN=${LLAMACPP_BIN:-$HOME/.cache/lorac/llama.cpp/build/bin}
P=${P:-128}
N=${N:-64}
REPS=${REPS:-3}
THREADS=${THREADS:-$(nproc 2>/dev/null || echo 1)}
ROUNDS=${ROUNDS:-3}
BATCH=${BATCH:-1}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/lorac-decode.XXXXXX")}
mkdir -p "$OUT"
RUN=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE)
[ -x "$LORAC" ] || { echo "bench/decode.sh: $LORAC not found (make)" >&2; exit 2; }
[ -s "$MODEL" ] || { echo "bench/decode.sh: $MODEL is absent (tools/fetch_smollm2.sh)" >&2; exit 2; }
[ -x "$BIN/llama-bench" ] || { echo "bench/decode.sh: no $BIN/llama-bench (tools/llamacpp_check.sh builds it)" >&2; exit 2; }
echo "bench/decode.sh: $(basename "$MODEL"), prompt $P, $N new tokens, $THREADS threads, $ROUNDS rounds;" \
  "load $(cut -d' ' -f1-3 /proc/loadavg)"
grep -m1 'model name' /proc/cpuinfo | sed 's/^/  /'
"${RUN[@]}" "$LORAC" version 2>/dev/null | head -n 3 | sed 's/^/  lorac: /'
echo "  llama.cpp: $("$BIN/llama-bench" --version 2>&1 | grep -m1 -i version)"
echo "  lorac:     $LORAC bench generate --model $MODEL --prompt $P --new $N --threads $THREADS --reps $REPS --json"
echo "  llama.cpp: $BIN/llama-bench -m $MODEL -t $THREADS -p $P -n $N -r $REPS -o json"

field() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."): d=d[k]
print(d)' "$1" "$2"; }
cpp_field() { # FILE pp|tg: llama-bench's mean tokens/s of that test
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))
t=[x for x in r if (x["n_prompt"]>0)==(sys.argv[2]=="pp")]
print(t[0]["avg_ts"])' "$1" "$2"
}
for r in $(seq 1 "$ROUNDS"); do
  "${RUN[@]}" "$LORAC" bench generate --model "$MODEL" --prompt "$P" --new "$N" --threads "$THREADS" --reps "$REPS" --json \
    >"$OUT/lorac$r.json" 2>"$OUT/lorac$r.err" || { echo "lorac failed: $(cat "$OUT/lorac$r.err")"; exit 1; }
  if [ "$BATCH" -gt 1 ]; then
    "${RUN[@]}" "$LORAC" bench generate --model "$MODEL" --prompt "$P" --new "$N" --threads "$THREADS" --reps "$REPS" \
      --batch "$BATCH" --json >"$OUT/batch$r.json" 2>/dev/null || { echo "lorac --batch failed"; exit 1; }
  fi
  "${RUN[@]}" "$BIN/llama-bench" -m "$MODEL" -t "$THREADS" -p "$P" -n "$N" -r "$REPS" -o json >"$OUT/cpp$r.json" \
    2>"$OUT/cpp$r.err" || { echo "llama-bench failed: $(tail -n 3 "$OUT/cpp$r.err")"; exit 1; }
  {
    printf '%s' "$(field "$OUT/lorac$r.json" base.prefill_tokens_per_s) $(field "$OUT/lorac$r.json" base.decode_tokens_per_s)"
    printf ' %s' "$(field "$OUT/lorac$r.json" unmerged.decode_tokens_per_s) $(field "$OUT/lorac$r.json" merged.decode_tokens_per_s)"
    printf ' %s %s' "$(cpp_field "$OUT/cpp$r.json" pp)" "$(cpp_field "$OUT/cpp$r.json" tg)"
    if [ "$BATCH" -gt 1 ]; then printf ' %s' "$(field "$OUT/batch$r.json" unmerged.decode_tokens_per_s)"; else printf ' -'; fi
    printf ' %s\n' "$(cut -d' ' -f1 /proc/loadavg)"
  } >>"$OUT/rounds.txt"
  read -r a b c d e f g h <<<"$(tail -n 1 "$OUT/rounds.txt")"
  echo "round $r (load $h): lorac prefill $a decode $b (unmerged $c, merged $d; batch $BATCH unmerged $g) | llama.cpp pp $e tg $f"
done
python3 - "$OUT/rounds.txt" "$BATCH" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
col = lambda i: statistics.median(float(r[i]) for r in rows)
pre, dec, unm, mer, pp, tg = (col(i) for i in range(6))
print(f"medians: lorac prefill {pre:.1f} tok/s vs llama.cpp pp {pp:.1f} ({pre / pp:.2f}x); "
      f"decode {dec:.1f} vs tg {tg:.1f} ({dec / tg:.2f}x)")
print(f"         unmerged adapter decode {unm:.1f} ({unm / dec:.2f}x of base), merged {mer:.1f}")
if int(sys.argv[2]) > 1:
    b = col(6)
    print(f"         batch {sys.argv[2]} (unmerged, one adapter for all) {b:.1f} tok/s = {b / unm:.2f}x one sequence")
EOF
echo "raw: $OUT"
