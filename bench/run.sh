#!/usr/bin/env bash
# bench/run.sh — lorac's LoRA training step beside PyTorch + loralib, in one run, on this machine.
#
#   make bench                       (builds build/lorac, then runs this)
#   bench/run.sh                     (uses an existing build/lorac)
#
# For each shape (B x T) it runs `lorac bench train` and bench/torch_train.py on GPT-2 small
# (12 layers, 768 wide, 12 heads, vocab 50257) with random weights, LoRA r 4 alpha 32 on q,v,
# threads = cores, and prints tokens/s, peak RSS and the ratios; then `lorac bench generate`.
# Both run with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (for these commands only), so the
# OpenBLAS kernel is the one a user's machine picks; the kernel that ran is printed.
#
# Knobs (environment): LORAC (build/lorac), PYTHON (a python with torch, loralib, transformers;
# default bench/.venv, then .venv), SHAPES ("8x128 4x512"), STEPS (5), WARMUP (2),
# THREADS (nproc), ROUNDS (1; more alternates lorac and torch that many times per shape and reports
# the median tokens/s of each: on a shared machine the load changes between runs), GENERATE (1 = also
# run lorac bench generate), OUT (a directory for the raw JSON), PRECISIONS ("auto fp32": lorac's
# --precision values to run, each a row of the table; auto = bf16 frozen-weight matmuls where the CPU
# has AVX512-BF16),
# MODEL_ARGS (the shape and adapter flags; a tiny shape checks the script in seconds),
# MODEL (a real model instead: an HF directory, any family; lorac bench train --model MODEL runs beside
# bench/peft_train.py, PyTorch + PEFT on the same directory, each with the family's default LoRA).
# PyTorch and loralib from PyPI, if you have neither venv:
#   python3 -m venv bench/.venv && bench/.venv/bin/pip install torch loralib transformers
# Not part of `make test` or CI: it takes minutes and measures the machine, not correctness.
set -u
cd "$(dirname "$0")/.."

LORAC=${LORAC:-build/lorac}
SHAPES=${SHAPES:-"8x128 4x512"}
STEPS=${STEPS:-5}
WARMUP=${WARMUP:-2}
THREADS=${THREADS:-$(nproc 2>/dev/null || echo 1)}
ROUNDS=${ROUNDS:-1}
GENERATE=${GENERATE:-1}
PRECISIONS=${PRECISIONS:-"auto fp32"}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/lorac-bench.XXXXXX")}
if [ -n "${MODEL:-}" ]; then
    read -r -a MODEL <<<"--model $MODEL ${MODEL_ARGS:-}" # a real model: PyTorch + PEFT on the same directory
    REF=(bench/peft_train.py)
    REFLIBS="torch, peft, transformers"
else
    read -r -a MODEL <<<"${MODEL_ARGS:---layers 12 --embd 768 --heads 12 --vocab 50257 --rank 4 --alpha 32 --targets q,v}"
    REF=(bench/torch_train.py)
    REFLIBS="torch, loralib, transformers"
fi
# the user's environment, minus the two OpenBLAS overrides that CI sets
RUN=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE)

if [ ! -x "$LORAC" ]; then
    echo "bench/run.sh: $LORAC not found; run \`make bench\` (or \`make\` first)" >&2
    exit 1
fi

if [ -z "${PYTHON:-}" ]; then
    for p in bench/.venv/bin/python .venv/bin/python; do
        if [ -x "$p" ]; then PYTHON=$p; break; fi
    done
fi
HAVE_TORCH=0
if [ -n "${PYTHON:-}" ] && "$PYTHON" -c "import $REFLIBS" 2>/dev/null; then
    HAVE_TORCH=1
else
    echo "bench/run.sh: no python with $REFLIBS (looked at \$PYTHON, bench/.venv, .venv);" >&2
    echo "  install them from PyPI with:" >&2
    echo "    python3 -m venv bench/.venv && bench/.venv/bin/pip install torch loralib transformers peft" >&2
    echo "  running lorac alone." >&2
fi
JSONPY=${PYTHON:-python3}
[ "$HAVE_TORCH" = 1 ] || JSONPY=python3

mkdir -p "$OUT"
echo "lorac bench: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, threads $THREADS, steps $STEPS after $WARMUP warm-up"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//')"
echo "raw JSON in $OUT; load average $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null); OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-(unset)} GOMP_SPINCOUNT=${GOMP_SPINCOUNT:-(unset)}"
fail=0
for shape in $SHAPES; do
    B=${shape%x*}
    T=${shape#*x}
    for r in $(seq 1 "$ROUNDS"); do
        for prec in $PRECISIONS; do
            echo "== train ${B}x${T} (round $r, load $(cut -d' ' -f1 /proc/loadavg 2>/dev/null)): $LORAC bench train ${MODEL[*]} --batch $B --seq $T --steps $STEPS --warmup $WARMUP --threads $THREADS --precision $prec --json"
            if ! "${RUN[@]}" "$LORAC" bench train "${MODEL[@]}" --batch "$B" --seq "$T" --steps "$STEPS" --warmup "$WARMUP" \
                --threads "$THREADS" --precision "$prec" --json >"$OUT/lorac-${prec}_${shape}_$r.json"; then
                echo "bench/run.sh: lorac bench train ${shape} --precision $prec failed" >&2
                fail=1
                rm -f "$OUT/lorac-${prec}_${shape}_$r.json"
            fi
        done
        if [ "$HAVE_TORCH" = 1 ]; then
            echo "== train ${B}x${T} (round $r, load $(cut -d' ' -f1 /proc/loadavg 2>/dev/null)): $PYTHON ${REF[*]} ${MODEL[*]} --batch $B --seq $T --steps $STEPS --warmup $WARMUP --threads $THREADS --json"
            if ! "${RUN[@]}" "$PYTHON" "${REF[@]}" "${MODEL[@]}" --batch "$B" --seq "$T" --steps "$STEPS" \
                --warmup "$WARMUP" --threads "$THREADS" --json >"$OUT/torch_${shape}_$r.json"; then
                echo "bench/run.sh: ${REF[*]} ${shape} failed" >&2
                fail=1
                rm -f "$OUT/torch_${shape}_$r.json"
            fi
        fi
    done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"

# The table: tokens/s and peak RSS of both, and the ratios (lorac / torch).
"$JSONPY" - "$OUT" "$ROUNDS" "$PRECISIONS" $SHAPES <<'EOF'
import json, os, statistics, sys
out, rounds, precs, shapes = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4:]
def load(name):
    """The round with the median tokens/s of tool_shape_<round>.json (the peak RSS is the max)."""
    runs = []
    for r in range(1, rounds + 1):
        try:
            with open(os.path.join(out, "%s_%d.json" % (name, r))) as f:
                runs.append(json.load(f))
        except (OSError, ValueError):
            pass
    if not runs:
        return None
    runs.sort(key=lambda d: d["tokens_per_s"])
    d = dict(runs[(len(runs) - 1) // 2])
    d["peak_rss_mb"] = max(x["peak_rss_mb"] for x in runs)
    return d
print()
print("| B x T | lorac matmuls | lorac tok/s | torch tok/s | speed ratio | lorac ms/step | torch ms/step | lorac RSS MiB | torch RSS MiB | RSS ratio |")
print("|---|---|---|---|---|---|---|---|---|---|")
core = None
for s in shapes:
    t = load("torch_%s" % s)
    def g(d, k, fmt="%.1f"):
        return fmt % d[k] if d else "-"
    for p in precs:
        l = load("lorac-%s_%s" % (p, s))
        sr = "%.2fx" % (l["tokens_per_s"] / t["tokens_per_s"]) if l and t else "-"
        mr = "%.2fx" % (l["peak_rss_mb"] / t["peak_rss_mb"]) if l and t else "-"
        print("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (s, l.get("precision", p) if l else p, g(l, "tokens_per_s"),
              g(t, "tokens_per_s"), sr, g(l, "ms_per_step"), g(t, "ms_per_step"), g(l, "peak_rss_mb"), g(t, "peak_rss_mb"), mr))
        if l:
            core = "%s (%s)" % (l["blas_core"], l["blas_config"])
            print("|   lorac phases | | forward+loss %.0f ms, backward %.0f ms, AdamW %.2f ms |||||||" % (l["forward_ms"], l["backward_ms"], l["adamw_ms"]))
    if t:
        print("|   torch phases | | forward+loss %.0f ms, backward %.0f ms, AdamW %.2f ms |||||||" % (t["forward_ms"], t["backward_ms"], t["adamw_ms"]))
        torch_info = "torch %s, %s" % (t["torch"], t.get("blas") or "CPU capability %s" % t.get("cpu_capability", "?"))
print()
print("speed ratio = lorac tokens/s / torch tokens/s (> 1: lorac faster); RSS ratio = lorac / torch (< 1: lorac smaller)")
if core:
    print("lorac OpenBLAS kernel: " + core)
if 'torch_info' in dir():
    print("torch: " + torch_info)
EOF

if [ "$GENERATE" = 1 ]; then
    echo
    echo "== generate: $LORAC bench generate ${MODEL[*]} --prompt 128 --new 32 --threads $THREADS"
    "${RUN[@]}" "$LORAC" bench generate "${MODEL[@]}" --prompt 128 --new 32 --threads "$THREADS" || fail=1
fi
[ "$HAVE_TORCH" = 1 ] || fail=1
exit $fail
