#!/usr/bin/env bash
# Runs every libFuzzer target in BUILD_DIR for SECONDS each, starting from its seed corpus in
# fuzz/corpus/<name>/ (copied, so the committed corpus is never modified). Fails on any finding.
set -euo pipefail
build=${1:-build-fuzz}
secs=${2:-30}
root=$(cd "$(dirname "$0")/.." && pwd)
[ -d "$build" ] || { echo "fuzz: no build directory $build"; exit 1; }
build=$(cd "$build" && pwd) # absolute: each target runs from its own work directory
shopt -s nullglob
targets=("$build"/fuzz_*)
if [ ${#targets[@]} -eq 0 ]; then echo "fuzz: no targets built"; exit 0; fi
for t in "${targets[@]}"; do
  [ -x "$t" ] || continue
  name=$(basename "$t")
  work=$(mktemp -d)
  if [ -d "$root/fuzz/corpus/$name" ]; then cp -r "$root/fuzz/corpus/$name/." "$work/"; fi
  echo "fuzz: $name for ${secs}s"
  (cd "$work" && "$t" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 "$work" \
     > "$work.log" 2>&1) || { rc=$?; tail -50 "$work.log"; echo "fuzz: $name FOUND A PROBLEM (exit $rc)"; exit 1; }
  grep -E "stat::number_of_executed_units|Done" "$work.log" | tail -2
  rm -rf "$work" "$work.log"
done
echo "fuzz: all targets ran without findings"
