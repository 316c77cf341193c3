#!/usr/bin/env bash
# bench/serve.sh — lorac serve under load on loopback: C concurrent streaming clients, each sending
# REQS completions of MAXTOK greedy tokens ("ignore_eos": every request runs to MAXTOK), over 1 adapter (every request the same) and over K
# different adapters (client c uses adapter c mod K), in alternating rounds.
#
#   bench/serve.sh           (an existing build/lorac; SmolLM2-135M-Instruct Q4_1 from tools/fetch_smollm2.sh)
#
# Per run: requests/s and output tokens/s over the wall time of the whole run (tokens from each
# request's usage), time to first token (the first server-sent event with text, timed by the client
# with bash's $EPOCHREALTIME as each event line arrives) and the time per output token after the
# first ((end - first token) / (tokens - 1), per request), as p50/p90/p99 over the requests; then the
# medians over ROUNDS rounds and the K-adapter / 1-adapter throughput ratio. The adapters are PEFT
# LoRAs (q,v r 8) trained for TRAIN_STEPS steps here on a few lines, so they differ from the base.
#
# With llama.cpp built (tools/llamacpp_check.sh; LLAMACPP_BIN, default ~/.cache/lorac/llama.cpp/build/bin)
# each round also runs llama.cpp's llama-server on the same file under the same load: the same
# adapters as GGUF files (train --gguf-adapter) loaded with --lora-init-without-apply, each request
# picking its adapter with llama.cpp's per-request "lora": [{"id": k, "scale": 1}], --parallel BATCH
# slots of CTX tokens each, the same threads. llama.cpp's README says requests with different LoRA
# configurations are not batched together, which is what the K-adapter row measures.
#
# Knobs (environment): LORAC (build/lorac), MODEL (~/.cache/lorac/SmolLM2-135M-Instruct.Q4_1.gguf),
# C (8 clients), REQS (4 per client), MAXTOK (32), K (8 adapters), ROUNDS (3), THREADS (nproc),
# BATCH (max batch, default C), TRAIN_STEPS (1), OUT (a directory for the adapters and raw timings),
# LLAMACPP (1 when llama-server is found; 0 skips it), CTX (context per sequence, 512).
set -u
cd "$(dirname "$0")/.."
LORAC=${LORAC:-build/lorac}
MODEL=${MODEL:-$HOME/.cache/lorac/SmolLM2-135M-Instruct.Q4_1.gguf}
C=${C:-8}
REQS=${REQS:-4}
MAXTOK=${MAXTOK:-32}
K=${K:-8}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-$(nproc 2>/dev/null || echo 1)}
BATCH=${BATCH:-$C}
CTX=${CTX:-512}
BIN=${LLAMACPP_BIN:-$HOME/.cache/lorac/llama.cpp/build/bin}
LLAMACPP=${LLAMACPP:-$([ -x "$BIN/llama-server" ] && echo 1 || echo 0)}
TRAIN_STEPS=${TRAIN_STEPS:-1}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/lorac-serve.XXXXXX")}
mkdir -p "$OUT"
RUN=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE)
[ -s "$MODEL" ] || { echo "bench/serve.sh: $MODEL is absent (tools/fetch_smollm2.sh)" >&2; exit 2; }
command -v curl >/dev/null || { echo "bench/serve.sh: curl is absent (make deps)" >&2; exit 2; }
echo "bench/serve.sh: $(basename "$MODEL"), $C clients x $REQS requests x $MAXTOK tokens, max batch $BATCH, $THREADS threads;" \
  "load $(cut -d' ' -f1-3 /proc/loadavg)"
"${RUN[@]}" "$LORAC" version 2>/dev/null | sed 's/^/  /'
grep -m1 'model name' /proc/cpuinfo | sed 's/^/  /'

# K adapters, each trained briefly on different lines
for k in $(seq 0 $((K - 1))); do
  [ -f "$OUT/a$k/adapter_model.safetensors" ] && [ -f "$OUT/a$k.gguf" ] && continue
  printf '{"prompt": "Question %d: what is %d plus %d?", "completion": " It is %d."}\n' $k $k $((k + 3)) $((2 * k + 3)) >"$OUT/d$k.jsonl"
  "${RUN[@]}" "$LORAC" train --model "$MODEL" --data "$OUT/d$k.jsonl" --steps "$TRAIN_STEPS" --warmup 0 --lr 1e-3 --batch-size 1 \
    --rank 8 --seed $((k + 1)) --out "$OUT/a$k" --gguf-adapter "$OUT/a$k.gguf" --quiet --threads "$THREADS" >/dev/null 2>&1 || { echo "training adapter $k failed" >&2; exit 1; }
done

# client C_ID N_ADAPTERS ENGINE: REQS streamed requests one after another; one line per request:
# start first_token end completion_tokens (seconds since the epoch, microseconds)
client() {
  local id=$1 nad=$2 engine=$3 r pick
  for r in $(seq "$REQS"); do
    if [ "$engine" = lorac ]; then pick="\"model\": \"a$((id % nad))\""; else pick="\"lora\": [{\"id\": $((id % nad)), \"scale\": 1.0}]"; fi
    local body="{$pick, \"prompt\": \"Tell me a story about request $id-$r.\", \"max_tokens\": $MAXTOK, \"temperature\": 0, \"ignore_eos\": true, \"stream\": true}"
    local t0=$EPOCHREALTIME first="" toks=0 line
    while IFS= read -r line; do
      case $line in
      *'"text":""'*) ;;
      *'"text":"'*) [ -z "$first" ] && first=$EPOCHREALTIME ;;
      esac
      case $line in *'"completion_tokens":'*) toks=${line##*\"completion_tokens\":}; toks=${toks%%,*} ;; esac
    done < <(curl -sN "$U/v1/completions" -H 'Content-Type: application/json' -d "$body")
    [ "$toks" = 0 ] && toks=$MAXTOK # a stream without usage (ignore_eos: every request runs to MAXTOK)
    echo "$t0 ${first:-$EPOCHREALTIME} $EPOCHREALTIME $toks"
  done
}

pct() { sort -g | awk -v p="$1" '{v[NR]=$1} END {if (!NR) {print "nan"; exit} i=int(p*(NR-1)+0.5)+1; printf "%.1f", v[i]}'; }

# start_lorac LOG N_ADAPTERS / start_cpp LOG N_ADAPTERS: a server; sets SP and U, or exits
start_lorac() {
  local log=$1 nad=$2
  : >"$log.out" # emptied here: the server's own redirection happens later, in its process
  "${RUN[@]}" "$LORAC" serve --model "$MODEL" --port 0 --threads "$THREADS" --max-batch "$BATCH" --max-queue $((C * 2)) \
    --ctx "$CTX" $(for k in $(seq 0 $((nad - 1))); do echo "--adapter a$k=$OUT/a$k"; done) >"$log.out" 2>"$log.err" &
  SP=$!
  U=""
  for _ in $(seq 600); do
    U=$(sed -n 's|.*listening on \(http://[0-9.]*:[0-9]*\) (model.*|\1|p' "$log.out" 2>/dev/null)
    [ -n "$U" ] && break
    sleep 0.1
  done
  [ -n "$U" ] || { echo "server failed: $(cat "$log.err")" >&2; kill "$SP"; exit 1; }
  WARM='{"model": "a0", "prompt": "warm up", "max_tokens": 4, "temperature": 0}'
}
start_cpp() {
  local log=$1 nad=$2 port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "${RUN[@]}" "$BIN/llama-server" -m "$MODEL" --host 127.0.0.1 --port "$port" -t "$THREADS" -tb "$THREADS" \
    --parallel "$BATCH" -c $((CTX * BATCH)) --lora-init-without-apply --no-webui \
    $(for k in $(seq 0 $((nad - 1))); do echo "--lora $OUT/a$k.gguf"; done) >"$log.out" 2>"$log.err" &
  SP=$!
  U="http://127.0.0.1:$port"
  for _ in $(seq 600); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$U/health")" = 200 ] && break
    kill -0 "$SP" 2>/dev/null || break
    sleep 0.1
  done
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$U/health")" = 200 ] || { echo "llama-server failed: $(tail -n 5 "$log.err")" >&2; kill "$SP"; exit 1; }
  WARM='{"lora": [{"id": 0, "scale": 1.0}], "prompt": "warm up", "max_tokens": 4, "temperature": 0}'
}

# run ENGINE N_ADAPTERS ROUND: one server, C clients at once; prints the run's summary line
run() {
  local engine=$1 nad=$2 round=$3 log=$OUT/run_${1}_${2}_$3
  "start_$engine" "$log" "$nad"
  local sp=$SP c
  # one warm-up request (first-touch of the mapped weights)
  curl -s "$U/v1/completions" -H 'Content-Type: application/json' -d "$WARM" >"$log.warm"
  grep -q '"choices"' "$log.warm" || { echo "the warm-up request failed: $(cat "$log.warm")" >&2; kill "$sp"; exit 1; }
  local t0=$EPOCHREALTIME pids=()
  for c in $(seq 0 $((C - 1))); do
    client "$c" "$nad" "$engine" >"$log.c$c" &
    pids+=($!)
  done
  wait "${pids[@]}"
  local t1=$EPOCHREALTIME
  kill -TERM "$sp"
  wait "$sp"
  cat "$log".c* >"$log.req"
  local n tok wall
  n=$(wc -l <"$log.req")
  tok=$(awk '{s += $4} END {print s + 0}' "$log.req")
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')
  awk '{print ($2 - $1) * 1000}' "$log.req" >"$log.ttft"
  awk '$4 > 1 {print ($3 - $2) * 1000 / ($4 - 1)}' "$log.req" >"$log.tpot"
  printf '%s %s %s %.2f %.1f %s %s %s %s %s %s\n' "$engine" "$nad" "$round" "$(awk -v n="$n" -v w="$wall" 'BEGIN {print n / w}')" \
    "$(awk -v t="$tok" -v w="$wall" 'BEGIN {print t / w}')" \
    "$(pct 0.5 <"$log.ttft")" "$(pct 0.9 <"$log.ttft")" "$(pct 0.99 <"$log.ttft")" \
    "$(pct 0.5 <"$log.tpot")" "$(pct 0.9 <"$log.tpot")" "$(pct 0.99 <"$log.tpot")"
}

engines=(lorac)
[ "$LLAMACPP" = 1 ] && engines+=(cpp)
echo "engine adapters round req/s out_tok/s ttft_p50_ms ttft_p90 ttft_p99 tpot_p50_ms tpot_p90 tpot_p99"
: >"$OUT/summary"
for round in $(seq "$ROUNDS"); do
  for e in "${engines[@]}"; do
    for nad in 1 "$K"; do run "$e" "$nad" "$round" | tee -a "$OUT/summary"; done
  done
done
med() { awk -v e="$1" -v a="$2" -v col="$3" '$1 == e && $2 == a {print $col}' "$OUT/summary" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
for e in "${engines[@]}"; do
  echo "$e medians over $ROUNDS rounds: 1 adapter $(med "$e" 1 4) req/s, $(med "$e" 1 5) tok/s, ttft p50 $(med "$e" 1 6) ms," \
    "tpot p50 $(med "$e" 1 9) ms; $K adapters $(med "$e" "$K" 4) req/s, $(med "$e" "$K" 5) tok/s, ttft p50 $(med "$e" "$K" 6) ms," \
    "tpot p50 $(med "$e" "$K" 9) ms"
  echo "$e throughput with $K different adapters / with 1: $(awk -v a="$(med "$e" "$K" 5)" -v b="$(med "$e" 1 5)" 'BEGIN {printf "%.3f", a / b}')"
done
if [ "$LLAMACPP" = 1 ]; then
  echo "lorac / llama.cpp throughput, 1 adapter: $(awk -v a="$(med lorac 1 5)" -v b="$(med cpp 1 5)" 'BEGIN {printf "%.3f", a / b}')," \
    "$K adapters: $(awk -v a="$(med lorac "$K" 5)" -v b="$(med cpp "$K" 5)" 'BEGIN {printf "%.3f", a / b}')"
fi
echo "raw timings in $OUT; load $(cut -d' ' -f1-3 /proc/loadavg)"
