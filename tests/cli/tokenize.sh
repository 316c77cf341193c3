#!/usr/bin/env bash
# lorac tokenize: ids of the committed fixtures' texts (tools/bpe_ref.py), --vocab/--merges, --lines,
# --special, --decode round trips, and one-line errors with a non-zero exit. With ../shared/data:
# the GPT-2 facts ("Hello world" is 15496 995) and E2E lines against e2e_sample.txt.
set -u
LORAC=$1
SRC=$2
FIX=$SRC/tests/fixtures/bpe
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }

# field N of the cases.txt row whose text field is exactly $1
want_ids() { awk -F'\t' -v t="$1" -v f="$2" '$1 == t { print $f; exit }' "$FIX/cases.txt" | sed 's/^-$//'; }

# 1. --model DIR with vocab.json + merges.txt (toy) and --vocab/--merges (adv), against cases.txt
for t in "Hello world" "I'm" "   leading" "trailing   " "Café Adriatic" "中文字符测试" "emoji 😀😁" "abab" "ababab"; do
    got=$("$LORAC" tokenize --model "$FIX/toy" --text "$t") || bad "toy '$t' exited $?"
    [ "$got" = "$(want_ids "$t" 3)" ] || bad "toy '$t': got '$got' want '$(want_ids "$t" 3)'"
    got=$("$LORAC" tokenize --vocab "$FIX/adv/encoder.json" --merges "$FIX/adv/vocab.bpe" --text "$t") || bad "adv exited"
    [ "$got" = "$(want_ids "$t" 5)" ] || bad "adv '$t': got '$got' want '$(want_ids "$t" 5)'"
done

# 2. --special, stdin, --lines, --decode
t="a<|endoftext|>b"
got=$("$LORAC" tokenize --model "$FIX/toy" --special --text "$t")
[ "$got" = "$(want_ids "$t" 4)" ] || bad "--special: got '$got' want '$(want_ids "$t" 4)'"
got=$(printf '%s' "$t" | "$LORAC" tokenize --model "$FIX/toy")
[ "$got" = "$(want_ids "$t" 3)" ] || bad "stdin: got '$got' want '$(want_ids "$t" 3)'"
printf 'Hello world\n\nabab\n' > "$TMP/in.txt"
got=$("$LORAC" tokenize --model "$FIX/toy" --file "$TMP/in.txt" --lines)
want=$(printf '%s\n\n%s' "$(want_ids "Hello world" 3)" "$(want_ids abab 3)")
[ "$got" = "$want" ] || bad "--lines: got '$got' want '$want'"
printf 'x \t\xff\xc3( end\n  ' > "$TMP/odd.bin" # invalid UTF-8 and trailing spaces survive the round trip
"$LORAC" tokenize --model "$FIX/toy" --file "$TMP/odd.bin" > "$TMP/odd.ids" || bad "odd bytes exited $?"
"$LORAC" tokenize --model "$FIX/toy" --decode --file "$TMP/odd.ids" > "$TMP/odd.back" || bad "--decode exited $?"
printf '\n' >> "$TMP/odd.bin" # --decode adds one newline
cmp -s "$TMP/odd.bin" "$TMP/odd.back" || bad "decode(encode(x)) != x for odd bytes"
got=$("$LORAC" tokenize --model "$FIX/toy" --decode --text "39 695 78 995")
[ "$got" = "Hello world" ] || bad "--decode: got '$got'"

# 3. errors: one line on stderr, non-zero exit
expect_error() { # pattern, then the command's arguments
    local pat=$1; shift
    if "$LORAC" tokenize "$@" > "$TMP/out" 2> "$TMP/err"; then bad "tokenize $* succeeded"; return; fi
    [ "$(wc -l < "$TMP/err")" -eq 1 ] || bad "tokenize $*: stderr is not one line: $(cat "$TMP/err")"
    grep -q -- "$pat" "$TMP/err" || bad "tokenize $*: '$(cat "$TMP/err")' lacks '$pat'"
}
expect_error "vocab.json + merges.txt" --model "$TMP" --text x
expect_error "give --model DIR" --text x
expect_error "give --model DIR" --model "$FIX/toy" --vocab "$FIX/toy/vocab.json" --text x
expect_error "unknown argument" --model "$FIX/toy" --bogus
expect_error "not in the vocabulary" --model "$FIX/toy" --decode --text "64 999999"
expect_error "is not an id" --model "$FIX/toy" --decode --text "64 x1"
mkdir "$TMP/m"
cp "$FIX/toy/vocab.json" "$TMP/m/"
printf '#version: 0.2\n\xc4\xa0 t\nfoo\n' > "$TMP/m/merges.txt"
expect_error "merges.txt:3: expected two tokens" --model "$TMP/m" --text x
printf '\xc4\xa0 t\nzq zq\n' > "$TMP/m/merges.txt"
expect_error "merges.txt:2: token \"zq\" is not in" --model "$TMP/m" --text x

# 4. GGUF and tokenizer.json (tests/fixtures/tok, tools/tok_ref.py): ids of cases.txt rows
TOKFIX=$SRC/tests/fixtures/tok
tok_want() { # fixture, mode, text -> the reference ids
    local hex; hex=$(printf '%s' "$3" | od -An -tx1 | tr -d ' \n')
    awk -F'\t' -v f="$1" -v m="$2" -v h="$hex" '$1 == f && $2 == m && $3 == h { print $4; exit }' "$TOKFIX/cases.txt"
}
for t in "Hello world" "It's 2024 and we're testing tokenizers!" "Emoji: 😀 🚀 👍🏽!"; do
    for m in bl_smollm.gguf:bl_smollm bl_llama3/tokenizer.json:bl_llama3 bl_qwen2:bl_qwen2 spm_meta:spm_meta; do
        got=$("$LORAC" tokenize --model "$TOKFIX/${m%%:*}" --no-bos --text "$t") || bad "${m%%:*} '$t' exited $?"
        [ "$got" = "$(tok_want "${m##*:}" p "$t")" ] || bad "${m%%:*} '$t': got '$got' want '$(tok_want "${m##*:}" p "$t")'"
    done
    # SentencePiece llama from GGUF prepends BOS (1) unless --no-bos
    got=$("$LORAC" tokenize --model "$TOKFIX/spm.gguf" --text "$t")
    [ "$got" = "1 $(tok_want spm.gguf p "$t")" ] || bad "spm.gguf '$t': got '$got'"
    got=$("$LORAC" tokenize --model "$TOKFIX/spm.gguf" --no-bos --text "$t")
    [ "$got" = "$(tok_want spm.gguf p "$t")" ] || bad "spm.gguf --no-bos '$t': got '$got'"
done
t="<|im_start|>user"$'\n'"Hi there!<|im_end|>"$'\n'"<|im_start|>assistant"$'\n'
got=$("$LORAC" tokenize --model "$TOKFIX/bl_smollm.gguf" --special --text "$t")
[ "$got" = "$(tok_want bl_smollm s "$t")" ] || bad "--special gguf: got '$got'"
# --chat: SmolLM2's template adds its default system message; --system replaces it
want=$("$LORAC" tokenize --model "$TOKFIX/bl_smollm.gguf" --special --text "<|im_start|>system"$'\n'"You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>"$'\n'"<|im_start|>user"$'\n'"Hi<|im_end|>"$'\n'"<|im_start|>assistant"$'\n')
got=$("$LORAC" tokenize --model "$TOKFIX/bl_smollm.gguf" --chat --text "Hi")
[ -n "$got" ] && [ "$got" = "$want" ] || bad "--chat: got '$got' want '$want'"
got=$("$LORAC" tokenize --model "$TOKFIX/bl_smollm.gguf" --chat --text "Hi" | "$LORAC" tokenize --model "$TOKFIX/bl_smollm.gguf" --decode --skip-special)
[ "$got" = "system
You are a helpful AI assistant named SmolLM, trained by Hugging Face
user
Hi
assistant" ] || bad "--chat | --decode --skip-special: got '$got'"
got=$("$LORAC" tokenize --model "$TOKFIX/bl_smollm.gguf" --chat --system "Be brief." --text "Hi" | "$LORAC" tokenize --model "$TOKFIX/bl_smollm.gguf" --decode)
[ "$(printf '%s' "$got" | head -n 2 | tr '\n' '|')" = "<|im_start|>system|Be brief.<|im_end|>|" ] || bad "--system: got '$got'"
printf 'GGUF\x03\x00\x00\x00' > "$TMP/trunc.gguf"
expect_error "trunc.gguf" --model "$TMP/trunc.gguf" --text x
expect_error "ChatML" --model "$TOKFIX/spm.gguf" --chat --text x
expect_error "needs --chat" --model "$TOKFIX/spm.gguf" --system x --text x
printf '{"model": {"type": "Unigram", "vocab": []}}' > "$TMP/tokenizer.json"
expect_error "model.type is \"Unigram\"" --model "$TMP/tokenizer.json" --text x
expect_error "model.type is \"Unigram\"" --model "$TMP" --text x

# 5. GPT-2 itself
DATA=$SRC/../shared/data
if [ -f "$DATA/README.md" ]; then
    got=$("$LORAC" tokenize --model "$DATA/gpt2-vocab" --text "Hello world")
    [ "$got" = "15496 995" ] || bad "Hello world: got '$got'"
    got=$("$LORAC" tokenize --model "$DATA/gpt2-vocab" --special --text "<|endoftext|>")
    [ "$got" = "50256" ] || bad "--special <|endoftext|>: got '$got'"
    for split in train valid test; do # line 1 of each split is in the sample
        got=$(head -n 1 "$DATA/e2e/$split.txt" | "$LORAC" tokenize --model "$DATA/gpt2-vocab" --lines)
        want=$(awk -v s=$split '$1 == s && $2 == 1 { $1 = ""; $2 = ""; sub(/^  /, ""); print; exit }' "$FIX/e2e_sample.txt")
        [ -n "$want" ] && [ "$got" = "$want" ] || bad "$split line 1: got '$got' want '$want'"
    done
else
    echo "note: ../shared/data is absent; the GPT-2 vocabulary checks are skipped"
fi

[ $fail -eq 0 ] && echo "tokenize: all checks passed"
exit $fail
