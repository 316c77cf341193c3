#!/usr/bin/env bash
# tools/e2e_overlay.sh — PyTorch + transformers + PEFT trains the recipe of a tools/e2e.sh run on the
# same model, from the same initial adapter, over the same batches, and its loss curve is drawn over
# lorac's in one SVG (issue 20, part 3; docs/e2e.md). Not part of `make test`.
#
#   tools/e2e_overlay.sh RUNDIR INIT [OUTDIR]
#
# RUNDIR is a tools/e2e.sh output made with INIT=INIT (its train.txt is the order both runs read with
# --no-shuffle; its adapter/checkpoint.safetensors holds the run's options: lr, warm-up, weight decay,
# label smoothing, batch, max length, clipping, schedule length, LoRA dropout); INIT is the PEFT
# adapter both start from (tools/peft_trajectory_ref.py --init-only --init-scale 0 makes PEFT's own
# initialisation). OUTDIR (RUNDIR/overlay) gets hf/ (the base in fp32 with its tokenizer: `lorac merge`
# of the GGUF), ref/losses.txt, ref/final/, and loss_overlay.svg. Knobs: PYTHON (bench/.venv/bin/python: torch, transformers 5, peft), LORAC
# (build/lorac), MODEL (the run's GGUF, ~/.cache/lorac/SmolLM2-135M-Instruct.Q4_1.gguf), REF_STEPS
# (a tenth of the run's steps), THREADS (nproc). The reference's LoRA dropout draws are PyTorch's,
# so the two curves can only agree within noise, which the overlay's numbers state.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:?usage: tools/e2e_overlay.sh RUNDIR INIT [OUTDIR]}
INIT=${2:?usage: tools/e2e_overlay.sh RUNDIR INIT [OUTDIR]}
OUT=${3:-$RUN/overlay}
PYTHON=${PYTHON:-bench/.venv/bin/python}
LORAC=${LORAC:-build/lorac}
MODEL=${MODEL:-$HOME/.cache/lorac/SmolLM2-135M-Instruct.Q4_1.gguf}
THREADS=${THREADS:-$(nproc 2>/dev/null || echo 2)}
die() { echo "tools/e2e_overlay.sh: $*" >&2; exit 1; }
ck=$RUN/adapter/checkpoint.safetensors
[ -f "$ck" ] || die "$ck: no checkpoint (a tools/e2e.sh run directory?)"
[ -f "$RUN/train.txt" ] || die "$RUN/train.txt: missing (tools/e2e.sh writes the shuffled training order there)"
[ -f "$INIT/adapter_config.json" ] || die "$INIT: not a PEFT adapter directory"
[ -x "$LORAC" ] || die "no lorac at $LORAC (make)"
"$PYTHON" -c "import torch, transformers, peft" 2>/dev/null ||
  die "$PYTHON lacks torch, transformers or peft (pip install torch transformers peft safetensors)"
mkdir -p "$OUT"
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE

# the run's options, as its checkpoint recorded them (key=value words)
opts=$("$PYTHON" - "$ck" <<'EOF'
import json, struct, sys
with open(sys.argv[1], "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    meta = json.loads(f.read(n)).get("__metadata__", {})
print(meta.get("options", ""))
EOF
)
opt() { tr ' ' '\n' <<<"$opts" | sed -n "s/^$1=//p"; }
for k in lr warmup wd ls batch accum maxlen clip total dropout; do [ -n "$(opt $k)" ] || die "$ck: no $k in its options"; done
grep -qw file-order <<<"$opts" || die "$RUN was not trained in file order (tools/e2e.sh trains with --no-shuffle)"
grep -qw init-adapter <<<"$opts" || die "$RUN did not start from an adapter (tools/e2e.sh INIT=...)"
[ "$(opt accum)" = 1 ] || die "gradient accumulation $(opt accum): the overlay runs batches of one micro-batch"
REF_STEPS=${REF_STEPS:-$(( ($(opt total) + 9) / 10 ))}

# the base in fp32 with its tokenizer (once): `lorac merge` of the GGUF writes both
if [ ! -f "$OUT/hf/tokenizer.json" ]; then
  rm -rf "$OUT/hf"
  "$LORAC" merge --model "$MODEL" --out "$OUT/hf" >/dev/null
fi

# the reference run: the first REF_STEPS steps of the same schedule
done_ref=0
[ -f "$OUT/ref/losses.txt" ] && done_ref=$(wc -l <"$OUT/ref/losses.txt")
if [ "$done_ref" -lt "$REF_STEPS" ]; then
  echo "== PyTorch + PEFT: $REF_STEPS steps of $(opt total) ($opts)"
  /usr/bin/time -f "reference: %e s wall, %M KiB peak RSS" -o "$OUT/time.txt" \
    "$PYTHON" tools/peft_trajectory_ref.py --model "$OUT/hf" --data "$RUN/train.txt" --init-adapter "$INIT" \
    --out "$OUT/ref" --steps "$REF_STEPS" --schedule-steps "$(opt total)" --warmup "$(opt warmup)" --lr "$(opt lr)" \
    --weight-decay "$(opt wd)" --label-smoothing "$(opt ls)" --clip "$(opt clip)" --batch-size "$(opt batch)" \
    --max-seq-len "$(opt maxlen)" --lora-dropout "$(opt dropout)" --threads "$THREADS" | tee "$OUT/ref.log" |
    awk 'NR % 10 == 0 {print; fflush()}'
  cat "$OUT/time.txt"
fi
"$PYTHON" tools/loss_overlay.py "$RUN/adapter/train_log.jsonl" "$OUT/ref/losses.txt" "$OUT/loss_overlay.svg" |
  tee "$OUT/overlay.txt"
