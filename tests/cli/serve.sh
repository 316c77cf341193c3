#!/usr/bin/env bash
# lorac serve end to end with curl, on a tiny random Llama (fp32, the ChatML test tokenizer) and four
# PEFT adapters trained here: 16 concurrent greedy requests over the 4 adapters each give exactly
# the text (JSON-escaped by the same writer) and finish reason that `lorac generate --json` gives for
# that prompt and adapter alone, decoded in shared batched steps; streaming (server-sent events)
# gives the same text; chat completions use the template as `generate --chat`; a weighted "lora"
# list is the sum `generate --adapter A --adapter B` makes; sampling with a seed is `generate
# --sample --seed`; loading and unloading adapters while requests run loses none of them; errors get
# their statuses and OpenAI error bodies and the server keeps serving; a full queue answers 429; a
# client that disconnects mid-stream frees its slot; SIGTERM drains (the running stream ends with
# [DONE]) and exits 0; a GGUF adapter (train --gguf-adapter) serves as its PEFT directory does.
# Skips when curl or libmicrohttpd (lorac built without serve) is missing.
# Usage: serve.sh LORAC SOURCE_DIR
set -u
L=$1
SRC=$2
if ! command -v curl >/dev/null; then
  echo "SKIP: curl is absent (make deps installs it)"
  exit 77
fi
if "$L" serve --model /nonexistent 2>&1 | grep -q "without libmicrohttpd"; then
  echo "SKIP: lorac was built without libmicrohttpd (make deps installs libmicrohttpd-dev)"
  exit 77
fi
T=$(mktemp -d)
SP=""
cleanup() {
  [ -n "$SP" ] && kill "$SP" 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

# start_server LOG ARGS...: lorac serve on a free port; sets SP (its pid) and U (its address)
start_server() {
  local log=$1
  shift
  : >"$log.out" # emptied here: the server's own redirection happens later, in its process
  "$L" serve --port 0 --threads 1 "$@" >"$log.out" 2>"$log.err" &
  SP=$!
  U=""
  for _ in $(seq 600); do
    U=$(sed -n 's|.*listening on \(http://[0-9.]*:[0-9]*\) (model.*|\1|p' "$log.out")
    [ -n "$U" ] && return 0
    kill -0 "$SP" 2>/dev/null || break
    sleep 0.1
  done
  echo "server did not start: $(cat "$log.err")"
  exit 1
}
# stop_server: SIGTERM, and the exit status must be 0
stop_server() {
  kill -TERM "$SP"
  wait "$SP"
  local rc=$?
  [ $rc -eq 0 ] || bad "the server exited $rc after SIGTERM"
  SP=""
}
# the first JSON string value of KEY in FILE, still escaped (both sides use lorac's JSON writer)
jstr() { grep -o "\"$1\":\"\\([^\"\\\\]\\|\\\\.\\)*\"" "$2" | head -n 1 | sed "s/^\"$1\":\"//; s/\"\$//"; }
# every KEY string of a server-sent event stream, concatenated
jcat() { grep -o "\"$1\":\"\\([^\"\\\\]\\|\\\\.\\)*\"" "$2" | sed "s/^\"$1\":\"//; s/\"\$//" | tr -d '\n'; }
hnum() { curl -s "$U/health" | sed -n "s/.*\"$1\":\\([0-9]*\\).*/\\1/p"; }
# wait_for KEY VALUE: poll /health until KEY has VALUE (60 s at most)
wait_for() {
  for _ in $(seq 600); do
    [ "$(hnum "$1")" = "$2" ] && return 0
    kill -0 "$SP" 2>/dev/null || return 1 # the server died
    sleep 0.1
  done
  return 1
}
# wait_ge KEY N: poll /health until KEY is at least N
wait_ge() {
  for _ in $(seq 600); do
    [ "$(hnum "$1")" -ge "$2" ] 2>/dev/null && return 0
    kill -0 "$SP" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
# post URL BODY OUT: the status code on stdout, the body in OUT
post() { curl -s -o "$3" -w '%{http_code}' "$U$1" -H 'Content-Type: application/json' -d "$2"; }

TOK=$SRC/tests/fixtures/tok/bl_smollm
"$L" init-model --out "$T/m" --model-type llama --layers 2 --embd 32 --heads 4 --kv-heads 2 --vocab 401 --positions 4096 \
  --tokenizer-from "$TOK" --seed 1 >/dev/null || { echo "init-model failed"; exit 1; }
printf '%s\n' '{"prompt": "hello there", "completion": " general kenobi"}' '{"prompt": "the quick brown", "completion": " fox jumps"}' \
  '{"prompt": "once upon", "completion": " a time"}' '{"prompt": "a b c", "completion": " d e f"}' >"$T/d.jsonl"
targets=(q_proj,v_proj all-linear o_proj,down_proj k_proj,up_proj)
for a in 0 1 2 3; do
  "$L" train --model "$T/m" --data "$T/d.jsonl" --steps 2 --warmup 0 --lr 1e-2 --batch-size 2 --rank $((2 + a)) --targets "${targets[$a]}" \
    --seed $((11 + a)) --out "$T/a$a" --gguf-adapter "$T/a$a.gguf" --quiet --threads 1 >/dev/null 2>&1 || bad "train a$a"
done
prompts=("hello there" "the quick brown fox" "once upon a time" "a b c d e")
N=24

# references: each prompt and adapter alone
for i in $(seq 0 15); do
  "$L" generate --model "$T/m" --adapter "$T/a$((i % 4))" --prompt "${prompts[$((i / 4))]}" --max-new-tokens $N --json \
    --threads 1 >"$T/ref$i" 2>&1 || bad "generate $i: $(cat "$T/ref$i")"
done
distinct=$(for i in 0 1 2 3; do jstr text "$T/ref$i"; done | sort -u | wc -l)
[ "$distinct" -ge 3 ] && ok || bad "the adapters should change the text: only $distinct distinct outputs of 4"

start_server "$T/s1" --model "$T/m" --adapter a0="$T/a0" --adapter a1="$T/a1" --adapter a2="$T/a2" --adapter a3="$T/a3" \
  --max-batch 4 --ctx 4096
# 16 concurrent greedy requests over the 4 adapters, 4 of them streamed
pids=()
for i in $(seq 0 15); do
  body="{\"model\": \"a$((i % 4))\", \"prompt\": \"${prompts[$((i / 4))]}\", \"max_tokens\": $N, \"temperature\": 0"
  if [ $((i % 5)) -eq 0 ]; then body="$body, \"stream\": true}"; else body="$body}"; fi
  (post /v1/completions "$body" "$T/r$i" >"$T/code$i") &
  pids+=($!)
done
wait "${pids[@]}"
for i in $(seq 0 15); do
  want=$(jstr text "$T/ref$i")
  wfin=$(jstr finish_reason "$T/ref$i")
  [ "$(cat "$T/code$i")" = 200 ] || bad "request $i: status $(cat "$T/code$i"): $(cat "$T/r$i")"
  if [ $((i % 5)) -eq 0 ]; then
    got=$(jcat text "$T/r$i")
    grep -q '^data: \[DONE\]$' "$T/r$i" || bad "stream $i does not end with [DONE]"
    grep -q "\"finish_reason\":\"$wfin\"" "$T/r$i" || bad "stream $i: finish_reason $wfin expected"
  else
    got=$(jstr text "$T/r$i")
    [ "$(jstr finish_reason "$T/r$i")" = "$wfin" ] || bad "request $i: finish_reason $(jstr finish_reason "$T/r$i"), generate $wfin"
  fi
  [ "$got" = "$want" ] && ok || bad "request $i (a$((i % 4)), '${prompts[$((i / 4))]}'): '$got' != generate's '$want'"
done

# chat (streamed and not) against generate --chat
"$L" generate --model "$T/m" --adapter "$T/a1" --chat --prompt "hi there" --max-new-tokens $N --json --threads 1 >"$T/cref"
c=$(post /v1/chat/completions "{\"model\": \"a1\", \"messages\": [{\"role\": \"user\", \"content\": \"hi there\"}], \"max_tokens\": $N, \"temperature\": 0}" "$T/c")
[ "$c" = 200 ] && [ "$(jstr content "$T/c")" = "$(jstr text "$T/cref")" ] && ok || bad "chat: $c $(cat "$T/c") vs $(cat "$T/cref")"
grep -q '"object":"chat.completion"' "$T/c" && grep -q '"role":"assistant"' "$T/c" && ok || bad "chat shape: $(cat "$T/c")"
post /v1/chat/completions "{\"model\": \"a1\", \"messages\": [{\"role\": \"user\", \"content\": \"hi there\"}], \"max_tokens\": $N, \"temperature\": 0, \"stream\": true}" "$T/cs" >/dev/null
[ "$(jcat content "$T/cs")" = "$(jstr text "$T/cref")" ] && grep -q 'chat.completion.chunk' "$T/cs" && ok || bad "chat stream: $(cat "$T/cs")"

# a weighted list is the sum generate makes of --adapter A --adapter B; sampling with a seed as generate's
"$L" generate --model "$T/m" --adapter "$T/a0" --adapter "$T/a2:0.5" --prompt "hello there" --max-new-tokens $N --json --threads 1 >"$T/wref"
post /v1/completions "{\"prompt\": \"hello there\", \"lora\": [{\"name\": \"a0\", \"scale\": 1}, {\"name\": \"a2\", \"scale\": 0.5}], \"max_tokens\": $N, \"temperature\": 0}" "$T/w" >/dev/null
[ "$(jstr text "$T/w")" = "$(jstr text "$T/wref")" ] && ok || bad "lora list: $(cat "$T/w") vs $(cat "$T/wref")"
"$L" generate --model "$T/m" --adapter "$T/a3" --prompt "a b c d e" --max-new-tokens $N --json --sample --temperature 0.8 \
  --top-k 40 --top-p 0.9 --seed 7 --threads 1 >"$T/sref"
post /v1/completions "{\"model\": \"a3\", \"prompt\": \"a b c d e\", \"max_tokens\": $N, \"temperature\": 0.8, \"top_k\": 40, \"top_p\": 0.9, \"seed\": 7}" "$T/s" >/dev/null
[ "$(jstr text "$T/s")" = "$(jstr text "$T/sref")" ] && ok || bad "seeded sampling: $(cat "$T/s") vs $(cat "$T/sref")"
# ignore_eos runs every request to max_tokens
post /v1/completions "{\"model\": \"a3\", \"prompt\": \"hi\", \"max_tokens\": 40, \"temperature\": 0, \"ignore_eos\": true}" "$T/ie" >/dev/null
grep -q '"completion_tokens":40,' "$T/ie" && grep -q '"finish_reason":"length"' "$T/ie" && ok || bad "ignore_eos: $(cat "$T/ie")"

# a stop string ends the text before its first occurrence (two letters of the greedy output)
full=$(jstr text "$T/ref1")
plain() { sed 's/\\u[0-9a-fA-F]\{4\}/#/g; s/\\./#/g'; } # escapes out of the way
stop=$(printf '%s' "$full" | plain | cut -c 3- | grep -o '[a-zA-Z][a-zA-Z]' | head -n 1)
if [ -n "$stop" ]; then
  post /v1/completions "{\"model\": \"a1\", \"prompt\": \"hello there\", \"max_tokens\": $N, \"temperature\": 0, \"stop\": [\"$stop\"]}" "$T/st" >/dev/null
  got=$(jstr text "$T/st")
  [ "${full:0:${#got}}" = "$got" ] && [ "${full:${#got}:2}" = "$stop" ] && ! printf '%s' "$got" | plain | grep -q "$stop" &&
    [ "$(jstr finish_reason "$T/st")" = stop ] && ok || bad "stop '$stop': '$got' of '$full'"
else
  echo "note: no two letters in '$full' to stop at"
fi

# load and unload while requests run: 6 long requests on a0, then a1 loaded again as b1 and a0 unloaded
"$L" generate --model "$T/m" --adapter "$T/a0" --prompt "once upon a time" --max-new-tokens 3000 --json --threads 1 >"$T/lref"
pids=()
for i in $(seq 0 5); do
  (post /v1/completions "{\"model\": \"a0\", \"prompt\": \"once upon a time\", \"max_tokens\": 3000, \"temperature\": 0}" "$T/l$i" >"$T/lc$i") &
  pids+=($!)
done
# (timing: under heavy load the clients may start far apart, so at least one running is enough)
wait_ge running 1 || bad "none of the long requests ran"
c=$(post /v1/adapters "{\"name\": \"b1\", \"path\": \"$T/a1\"}" "$T/ld")
[ "$c" = 200 ] && ok || bad "load b1: $c $(cat "$T/ld")"
c=$(curl -s -o "$T/ul" -w '%{http_code}' -X DELETE "$U/v1/adapters/a0")
[ "$c" = 200 ] && ok || bad "unload a0: $c $(cat "$T/ul")"
[ "$(hnum running)" -gt 0 ] || echo "note: the a0 requests ended before the unload (a fast machine: the check is weaker)"
c=$(post /v1/completions "{\"model\": \"b1\", \"prompt\": \"hello there\", \"max_tokens\": $N, \"temperature\": 0}" "$T/b1")
[ "$c" = 200 ] && [ "$(jstr text "$T/b1")" = "$(jstr text "$T/ref1")" ] && ok || bad "b1 (a1 loaded again): $c $(cat "$T/b1")"
c=$(post /v1/completions "{\"model\": \"a0\", \"prompt\": \"x\"}" "$T/gone")
[ "$c" = 404 ] && grep -q model_not_found "$T/gone" && ok || bad "a0 after unload: $c $(cat "$T/gone")"
wait "${pids[@]}"
for i in $(seq 0 5); do
  [ "$(cat "$T/lc$i")" = 200 ] && [ "$(jstr text "$T/l$i")" = "$(jstr text "$T/lref")" ] && ok \
    || bad "a0 request $i across the unload: $(cat "$T/lc$i") $(head -c 300 "$T/l$i")"
done
seqs=$(hnum max_decode_seqs)
[ "${seqs:-0}" -ge 2 ] && ok || bad "no decode step ran more than one sequence (max_decode_seqs $seqs)"
curl -s "$U/v1/models" >"$T/models"
grep -q '"id":"b1"' "$T/models" && ! grep -q '"id":"a0"' "$T/models" && grep -q '"id":"m"' "$T/models" && ok || bad "models: $(cat "$T/models")"
c=$(post /v1/adapters "{\"name\": \"a0\", \"path\": \"$T/a0\"}" "$T/ld2")
c2=$(post /v1/completions "{\"model\": \"a0\", \"prompt\": \"hello there\", \"max_tokens\": $N, \"temperature\": 0}" "$T/again")
[ "$c" = 200 ] && [ "$c2" = 200 ] && [ "$(jstr text "$T/again")" = "$(jstr text "$T/ref0")" ] && ok || bad "a0 loaded again: $c $c2 $(cat "$T/again")"
# the same adapter as llama.cpp's GGUF file (train --gguf-adapter), loaded at run time
c=$(post /v1/adapters "{\"name\": \"g3\", \"path\": \"$T/a3.gguf\"}" "$T/lg")
c2=$(post /v1/completions "{\"model\": \"g3\", \"prompt\": \"hello there\", \"max_tokens\": $N, \"temperature\": 0}" "$T/g3")
[ "$c" = 200 ] && [ "$c2" = 200 ] && [ "$(jstr text "$T/g3")" = "$(jstr text "$T/ref3")" ] && ok || bad "GGUF adapter g3: $c $c2 $(cat "$T/lg") $(cat "$T/g3")"

# the official openai Python client, when importable (LORAC_PYTHON picks the interpreter)
PY=${LORAC_PYTHON:-python3}
if command -v "$PY" >/dev/null && "$PY" -c "import openai" 2>/dev/null; then
  "$PY" "$SRC/tools/serve_openai_check.py" "$U/v1" a1 && ok || bad "the openai client check"
else
  echo "note: the openai Python package is absent: its client check skipped (LORAC_PYTHON=python-with-openai)"
fi

# errors: status, an OpenAI error body, and the server goes on
expect() { # expect STATUS NEEDLE METHOD PATH [BODY]
  local want=$1 needle=$2 method=$3 path=$4 body=${5:-}
  local c
  if [ -n "$body" ]; then c=$(curl -s -o "$T/e" -w '%{http_code}' -X "$method" "$U$path" --data-binary "$body")
  else c=$(curl -s -o "$T/e" -w '%{http_code}' -X "$method" "$U$path"); fi
  if [ "$c" = "$want" ] && grep -q '"error":{"message":' "$T/e" && grep -qF -- "$needle" "$T/e"; then ok
  else bad "$method $path '$body': $c (want $want, '$needle'): $(cat "$T/e")"; fi
}
long=$(printf 'word %.0s' $(seq 5000))
expect 400 "request body:1:" POST /v1/completions '{"prompt": "x",'
expect 400 "JSON object" POST /v1/completions '[1, 2]'
expect 400 '\"prompt\"' POST /v1/completions '{"prompt": 5}'
expect 400 '\"max_tokens\"' POST /v1/completions '{"prompt": "x", "max_tokens": "many"}'
expect 400 '\"temperature\"' POST /v1/completions '{"prompt": "x", "temperature": -1}'
expect 400 '\"stream\"' POST /v1/completions '{"prompt": "x", "stream": "yes"}'
expect 400 '\"stop\"' POST /v1/completions '{"prompt": "x", "stop": 3}'
expect 400 '\"lora\"' POST /v1/completions '{"prompt": "x", "lora": [{"scale": 1}]}'
expect 400 '\"messages\"' POST /v1/chat/completions '{"messages": [{"role": "robot", "content": "x"}]}'
expect 404 model_not_found POST /v1/completions '{"model": "nope", "prompt": "x"}'
expect 404 "does not exist" POST /v1/completions '{"lora": [{"name": "nope", "scale": 1}], "prompt": "x"}'
expect 400 "maximum context length" POST /v1/completions "{\"prompt\": \"$long\", \"max_tokens\": 4}"
expect 405 "use POST" GET /v1/completions
expect 404 "no route" GET /v2/nothing
expect 400 "adapter_config.json" POST /v1/adapters "{\"name\": \"x\", \"path\": \"$T/nope\"}"
expect 409 "exists already" POST /v1/adapters "{\"name\": \"a1\", \"path\": \"$T/a1\"}"
expect 404 "no adapter named" DELETE /v1/adapters/nope
head -c 1100000 /dev/zero | tr '\0' a >"$T/huge"
c=$(curl -s -o "$T/e" -w '%{http_code}' "$U/v1/completions" --data-binary @"$T/huge")
[ "$c" = 413 ] && ok || bad "a 1.1 MB body: $c $(cat "$T/e")"
c=$(post /v1/completions "{\"model\": \"a2\", \"prompt\": \"${prompts[2]}\", \"max_tokens\": $N, \"temperature\": 0}" "$T/after")
[ "$c" = 200 ] && [ "$(jstr text "$T/after")" = "$(jstr text "$T/ref10")" ] && ok || bad "served after the errors: $c $(cat "$T/after")"
stop_server

# one slot, a queue of one: 429 when full; a client that goes away mid-stream frees its slot;
# SIGTERM lets the running stream finish
"$L" init-model --out "$T/big" --model-type llama --layers 2 --embd 64 --heads 4 --kv-heads 2 --vocab 401 --positions 4096 \
  --tokenizer-from "$TOK" --seed 2 >/dev/null
start_server "$T/s2" --model "$T/big" --max-batch 1 --max-queue 1 --ctx 4096
curl -sN "$U/v1/completions" -d '{"prompt": "hello", "max_tokens": 4000, "temperature": 0, "stream": true}' >"$T/long" &
CP=$!
wait_for running 1 || bad "the long request never ran"
(post /v1/completions '{"prompt": "hello", "max_tokens": 8, "temperature": 0}' "$T/q" >"$T/qc") &
QP=$!
wait_for queued 1 || bad "the second request was never queued"
c=$(post /v1/completions '{"prompt": "hello", "max_tokens": 8}' "$T/full")
[ "$c" = 429 ] && grep -q '"error"' "$T/full" && ok || bad "a full queue: $c $(cat "$T/full") (running $(hnum running))"
sleep 0.3
kill "$CP" 2>/dev/null
wait "$CP" 2>/dev/null
wait "$QP"
[ "$(cat "$T/qc")" = 200 ] && ok || bad "the queued request after the disconnect: $(cat "$T/qc") $(cat "$T/q")"
wait_for running 0 || bad "the slot of the client that went away was not freed"
tokens=$(hnum tokens)
[ "${tokens:-99999}" -lt 4000 ] && ok || bad "the abandoned stream ran on: $tokens tokens generated"
grep -q '"finish_reason":null' "$T/long" && ok || bad "the abandoned stream sent nothing"
curl -sN "$U/v1/completions" -d '{"prompt": "hello", "max_tokens": 3000, "temperature": 0, "stream": true}' >"$T/drain" &
CP=$!
wait_for running 1 || bad "the stream before SIGTERM never ran"
stop_server
wait "$CP"
tail -n 2 "$T/drain" | grep -q '^data: \[DONE\]$' && grep -q '"finish_reason":"length"' "$T/drain" && ok \
  || bad "the stream running at SIGTERM did not finish: $(tail -c 300 "$T/drain")"
grep -q draining "$T/s2.err" && ok || bad "no drain message: $(cat "$T/s2.err")"
curl -s -m 2 "$U/health" >/dev/null && bad "the server still answers after exiting" || ok

echo "serve: $pass passed, $fail failed"
[ $fail -eq 0 ]
