#!/usr/bin/env bash
# lorac train/eval --task glue-*: on a tiny random BERT (tests/fixtures/glue/tiny_bert, from
# tools/bert_ref.py) trains LoRA, head-only and full fine-tuning on a toy SST-2 file, checks the
# adapter layout (PEFT SEQ_CLS, modules_to_save classifier + pooler), evaluates with --json, and
# checks that bad input (wrong columns, label out of range, a mismatched adapter/task, a missing
# model) exits non-zero with ONE stderr line and leaves no output. Usage: glue.sh LORAC SOURCE_DIR
set -u
lorac=$1
src=$2
fix=$src/tests/fixtures/glue/tiny_bert
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
err() { echo "FAIL: $*"; fail=1; }

# train and eval hand --task glue-* to the GLUE runs
"$lorac" train --task glue-sst2 2>&1 | grep -q -- "--model, --data and --out are required" || err "train --task glue-* without --model is not refused"

common=(--task glue-sst2 --model "$fix" --data "$fix" --epochs 2 --batch 4 --max-seq-len 16 --threads 1)
"$lorac" train "${common[@]}" --out "$tmp/lora" --rank 4 --json >"$tmp/out.json" 2>"$tmp/log" || err "lora train: $(tail -1 "$tmp/log")"
[ -f "$tmp/lora/adapter_model.safetensors" ] && [ -f "$tmp/lora/adapter_config.json" ] || err "lora: no adapter files"
grep -q '"task_type": "SEQ_CLS"' "$tmp/lora/adapter_config.json" || err "adapter_config lacks task_type SEQ_CLS"
grep -q '"pooler"' "$tmp/lora/adapter_config.json" || err "adapter_config lacks modules_to_save pooler"
grep -q '"accuracy"' "$tmp/out.json" || err "train --json printed no accuracy: $(cat "$tmp/out.json")"
"$lorac" eval --task glue-sst2 --model "$fix" --adapter "$tmp/lora" --data "$fix/dev.tsv" --json >"$tmp/ev.json" 2>"$tmp/log" ||
  err "eval: $(tail -1 "$tmp/log")"
grep -q '"n": 10' "$tmp/ev.json" || err "eval n: $(cat "$tmp/ev.json")"
# the same adapter scored twice gives the same numbers (train's own eval and eval)
[ "$(sed 's/, "seconds".*//; s/"split": "[^"]*"//' "$tmp/out.json")" = "$(sed 's/, "seconds".*//; s/"split": "[^"]*"//' "$tmp/ev.json")" ] ||
  err "train-time and eval scores differ: $(cat "$tmp/out.json") vs $(cat "$tmp/ev.json")"
"$lorac" train "${common[@]}" --out "$tmp/head" --head-only 2>"$tmp/log" >/dev/null || err "head-only: $(tail -1 "$tmp/log")"
"$lorac" train "${common[@]}" --out "$tmp/full" --full-ft 2>"$tmp/log" >/dev/null || err "full-ft: $(tail -1 "$tmp/log")"
[ -f "$tmp/full/model.safetensors" ] && [ -f "$tmp/full/vocab.txt" ] && grep -q '"num_labels": 2' "$tmp/full/config.json" ||
  err "full-ft output is not a model directory"
"$lorac" eval --task glue-sst2 --model "$tmp/full" --data "$fix/dev.tsv" >/dev/null 2>"$tmp/log" || err "eval full: $(tail -1 "$tmp/log")"

# bad input: one line, non-zero exit, no output directory
one_line_fail() { # name expected-fragment command...
  local name=$1 want=$2; shift 2
  "$@" >/dev/null 2>"$tmp/e"; local rc=$?
  [ $rc -ne 0 ] || err "$name: exit 0"
  [ "$(wc -l <"$tmp/e")" -eq 1 ] || err "$name: stderr is not one line: $(cat "$tmp/e")"
  grep -qF -- "$want" "$tmp/e" || err "$name: stderr lacks '$want': $(cat "$tmp/e")"
}
printf 'sentence\tlabel\nok\t1\ntoo\tmany\tcols\n' >"$tmp/cols.tsv"
one_line_fail columns "cols.tsv:3: expected 2" "$lorac" train "${common[@]}" --data "$tmp/cols.tsv" --out "$tmp/bad1"
printf 'sentence\tlabel\nok\t5\n' >"$tmp/label.tsv"
one_line_fail label 'label.tsv:2: label "5"' "$lorac" train "${common[@]}" --data "$tmp/label.tsv" --out "$tmp/bad2"
printf 'index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n0\tg\tf\ty\t0\tn\tn\thello world\tsuper fun\t4.5\n' >"$tmp/stsb.tsv"
one_line_fail mismatch "labels" "$lorac" eval --task glue-stsb --model "$tmp/full" --data "$tmp/stsb.tsv"
one_line_fail adapter "classifier" "$lorac" eval --task glue-stsb --model "$fix" --adapter "$tmp/lora" --data "$tmp/stsb.tsv"
one_line_fail model "config.json" "$lorac" train "${common[@]}" --model "$tmp/nope" --out "$tmp/bad3"
one_line_fail smoothing "applies to causal LMs only" "$lorac" train "${common[@]}" --data "$tmp/label.tsv" --label-smoothing 0.1 --out "$tmp/bad4"
for d in bad1 bad2 bad3 bad4; do [ ! -e "$tmp/$d" ] || err "$d: output left behind"; done
exit $fail
