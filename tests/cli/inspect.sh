#!/usr/bin/env bash
# lorac inspect: prints the metadata and tensors of a safetensors file written by the Python library
# (exit 0, text and --json); every broken file (built here at run time) exits 1 with ONE stderr line
# "lorac: PATH: problem" that names the file. Usage: inspect.sh LORAC SOURCE_DIR
set -u
export LC_ALL=C # ${#s} counts bytes
lorac=$1
src=$2
fix=$src/tests/fixtures/safetensors/small.safetensors
fail=0
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
err() { echo "FAIL: $*"; fail=1; }

# 8 bytes little-endian as printf octal escapes
le64() {
  local n=$1 s="" i
  for i in 0 1 2 3 4 5 6 7; do s+=$(printf '\\%03o' $((n & 255))); n=$((n >> 8)); done
  printf '%s' "$s"
}
# mk FILE HEADER DATA_BYTES [HEADER_LENGTH]
mk() {
  printf "$(le64 "${4:-${#2}}")" >"$1"
  printf '%s' "$2" >>"$1"
  head -c "$3" /dev/zero >>"$1"
}

# the real file
out=$("$lorac" inspect "$fix") || err "fixture: exit $?"
for want in "$fix: safetensors, 6 tensors, 2 metadata entries" \
            "  format = pt" \
            "  note = lorac fixture: caf"$'\xc3\xa9'" = 1" \
            "  weight.f32                               F32   [3, 4]                             12  [36, 84]" \
            "  weight.f16                               F16   [2, 3, 2]                          12  [94, 118]" \
            "  embed.bf16                               BF16  [5]                                 5  [84, 94]" \
            "  scalar                                   F32   []                                  1  [32, 36]" \
            "  empty                                    F32   [0, 4]                              0  [32, 32]" \
            "  ids                                      I64   [4]                                 4  [0, 32]" \
            "total: 6 tensors, 34 parameters, 118 bytes of tensor data"; do
  grep -qxF -- "$want" <<<"$out" || err "fixture output lacks: $want"
done
out=$("$lorac" inspect --json "$fix") || err "--json: exit $?"
for want in '"format": "pt"' '"name": "weight.f16"' '"dtype": "BF16"' '"parameters": 34' '"bytes": 118'; do
  grep -qF -- "$want" <<<"$out" || err "--json output lacks: $want"
done
tr -d ' \n' <<<"$out" | grep -qF '"name":"weight.f16","dtype":"F16","shape":[2,3,2],"parameters":12,"data_offsets":[94,118]}' \
  || err "--json tensor entry"

# broken files: name, then a fragment of the expected message
hl=$(od -An -t u8 -N 8 "$fix" | tr -d ' ')
head -c 0 "$fix" >"$dir/empty.safetensors"
head -c 5 "$fix" >"$dir/trunc5.safetensors"
head -c 300 "$fix" >"$dir/trunc300.safetensors"
head -c $((8 + hl + 100)) "$fix" >"$dir/truncdata.safetensors"
mk "$dir/past_end.safetensors" '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,999]}}' 512
mk "$dir/overlap.safetensors" '{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}' 24
mk "$dir/bad_json.safetensors" '{"a":{"dtype":"F32",}}' 0
mk "$dir/absurd.safetensors" '{"a":{"dtype":"F32","shape":[4611686018427387904,4611686018427387904],"data_offsets":[0,16]}}' 16
mk "$dir/dtype.safetensors" '{"a":{"dtype":"F8_Q","shape":[2],"data_offsets":[0,2]}}' 2
mk "$dir/hlen.safetensors" '{}' 0 1099511627776
mk "$dir/numel.safetensors" '{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}' 8
mk "$dir/dup.safetensors" '{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}' 2
mk "$dir/meta.safetensors" '{"__metadata__":{"k":1}}' 0
mk "$dir/dims.safetensors" '{"a":{"dtype":"U8","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,1]}}' 1
mk "$dir/array.safetensors" '[1,2]' 0
cases=(
  "empty.safetensors|truncated: 0 bytes"
  "trunc5.safetensors|truncated: 5 bytes"
  "trunc300.safetensors|header length $hl is past the end of the file (300 bytes)"
  "truncdata.safetensors|tensor 'weight.f16': data_offsets [94, 118] past the end of the data area (100 bytes)"
  "past_end.safetensors|tensor 'a': data_offsets [0, 999] past the end of the data area (512 bytes)"
  "overlap.safetensors|tensors 'a' [0, 16] and 'b' [8, 24] overlap"
  "bad_json.safetensors|header:1:21: expected a string key, found '}'"
  "absurd.safetensors|is too large (its size overflows)"
  "dtype.safetensors|unknown dtype 'F8_Q'"
  "hlen.safetensors|header length 1099511627776 is past the end of the file (10 bytes)"
  "numel.safetensors|data_offsets [0, 8] hold 8 bytes but F32 shape [3] needs 12"
  "dup.safetensors|tensor 'a' appears twice in the header"
  "meta.safetensors|__metadata__ value for 'k' is not a string"
  "dims.safetensors|shape has 9 dimensions (at most 8)"
  "array.safetensors|header is not a JSON object"
  "missing.safetensors|cannot open"
  ".|not a regular file"
)
for c in "${cases[@]}"; do
  file=${c%%|*}
  frag=${c#*|}
  path=$dir/$file
  [ "$file" = . ] && path=$dir
  "$lorac" inspect "$path" >"$dir/out" 2>"$dir/err"
  rc=$?
  [ "$rc" -eq 1 ] || err "$file: exit $rc, want 1"
  lines=$(wc -l <"$dir/err")
  msg=$(cat "$dir/err")
  [ "$lines" -eq 1 ] || err "$file: $lines lines of error output: $msg"
  grep -qF -- "lorac: $path: " <<<"$msg" || err "$file: message does not start with 'lorac: PATH: ': $msg"
  grep -qF -- "$frag" <<<"$msg" || err "$file: message lacks '$frag': $msg"
  [ -s "$dir/out" ] && err "$file: printed to stdout"
done

"$lorac" inspect 2>/dev/null && err "no FILE accepted"
"$lorac" inspect "$fix" --bogus 2>/dev/null && err "unknown option accepted"
"$lorac" inspect "$fix" "$fix" 2>/dev/null && err "two files accepted"
"$lorac" inspect --help | grep -q "usage: lorac inspect" || err "--help"

[ $fail -eq 0 ] && echo "inspect: all checks passed"
exit $fail
