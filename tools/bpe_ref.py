#!/usr/bin/env python3
"""Reference ids for lorac's GPT-2 byte-level BPE tokenizer (tests/test_bpe.c).

Run (from the repository root, with ../shared/data present):
    .venv/bin/python tools/bpe_ref.py [--data ../shared/data]

The reference encoder is OpenAI's GPT-2 encoder.py algorithm (bytes_to_unicode, get_pairs, bpe(),
the pre-tokenizer regex), re-typed below, running on the Python `regex` module; it is what
src/tok/unicode_gpt2.c was generated from (tools/bpe_unicode_tables.py), so both use the same
Unicode version. Input bytes are decoded with errors="surrogateescape" and each piece encoded back
the same way, which is how lorac defines the encoding of invalid UTF-8. If Hugging Face
`tokenizers` is installed, every E2E line is also encoded with its GPT-2 byte-level BPE and the
number of disagreements is printed (it uses a different regex engine and Unicode version, so it
is a cross-check, not the reference).

Writes tests/fixtures/bpe/:
    toy/vocab.json, toy/merges.txt   a small GPT-2 vocabulary: the 256 byte tokens, the first
                                     TOY_MERGES merges of GPT-2 (same ids) and <|endoftext|>
    adv/encoder.json, adv/vocab.bpe  a hand-made vocabulary whose merges create pairs of lower rank
                                     than the pair being merged (never so in a trained one), to pin
                                     down encoder.py's "merge every occurrence, then look again"
    cases.txt      one case per line, tab-separated fields ("-" for an empty list):
                   text (UTF-8, with \\xNN for control bytes, backslash and invalid UTF-8),
                   pre-token end offsets (bytes), ids with toy, ids with toy and specials allowed,
                   ids with adv, ids with GPT-2
    classes.txt    "CODEPOINT CLASS" (hex, 0 other 1 \\p{L} 2 \\p{N} 3 \\s) for both sides of every
                   boundary between classes, as the regex module sees them
    e2e_{train,valid,test}.fnv32
                   for each line of ../shared/data/e2e/SPLIT.txt (the bytes before its '\\n'), the
                   32-bit FNV-1a hash of its GPT-2 ids as little-endian int32s, as little-endian u32s
    e2e_sample.txt "SPLIT LINE ids..." for every SAMPLE_EVERY-th line, to show which ids differ
"""
import argparse
import json
import os
import random
import struct
import sys

import regex

TOY_MERGES = 2000
SAMPLE_EVERY = 421
BOUNDARY_EVERY = 10
PAT = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
EOT = "<|endoftext|>"


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


BYTE_ENCODER = bytes_to_unicode()


def get_pairs(word):
    return set(zip(word, word[1:]))


class Encoder:
    """encoder.py's Encoder, on bytes (surrogateescape) instead of str."""

    def __init__(self, encoder, merges):
        self.encoder = encoder
        self.bpe_ranks = dict(zip(merges, range(len(merges))))
        self.cache = {}

    def bpe(self, token):
        if token in self.cache:
            return self.cache[token]
        word = tuple(token)
        pairs = get_pairs(word)
        if not pairs:
            return [token]
        while True:
            bigram = min(pairs, key=lambda pair: self.bpe_ranks.get(pair, float("inf")))
            if bigram not in self.bpe_ranks:
                break
            first, second = bigram
            new_word = []
            i = 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                    new_word.extend(word[i:j])
                    i = j
                except ValueError:
                    new_word.extend(word[i:])
                    break
                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    new_word.append(first + second)
                    i += 2
                else:
                    new_word.append(word[i])
                    i += 1
            word = tuple(new_word)
            if len(word) == 1:
                break
            pairs = get_pairs(word)
        self.cache[token] = list(word)
        return list(word)

    def encode_str(self, text):
        ids = []
        for piece in PAT.findall(text):
            piece = "".join(BYTE_ENCODER[b] for b in piece.encode("utf-8", "surrogateescape"))
            ids.extend(self.encoder[t] for t in self.bpe(piece))
        return ids

    def encode(self, data, specials=False):
        text = data.decode("utf-8", "surrogateescape")
        if not specials or EOT not in self.encoder:
            return self.encode_str(text)
        ids = []
        for k, part in enumerate(text.split(EOT)):
            if k:
                ids.append(self.encoder[EOT])
            ids.extend(self.encode_str(part))
        return ids


def load(vocab_path, merges_path):
    encoder = json.load(open(vocab_path, encoding="utf-8"))
    lines = open(merges_path, encoding="utf-8").read().split("\n")
    merges = [tuple(l.split()) for l in lines if l and not l.startswith("#version")]
    return Encoder(encoder, merges)


def pretok_ends(data):
    ends, at = [], 0
    for piece in PAT.findall(data.decode("utf-8", "surrogateescape")):
        at += len(piece.encode("utf-8", "surrogateescape"))
        ends.append(at)
    assert at == len(data)
    return ends


def escape(data):
    """Printable UTF-8 as is; control bytes, DEL, backslash and invalid UTF-8 bytes as \\xNN."""
    if data == b"-":
        return "\\x2D"  # "-" alone stands for the empty text
    out = []
    for ch in data.decode("utf-8", "surrogateescape"):
        cp = ord(ch)
        if 0xDC80 <= cp <= 0xDCFF:
            out.append("\\x%02X" % (cp - 0xDC00))
        elif cp < 0x20 or cp == 0x7F or ch == "\\":
            out.append("\\x%02X" % cp)
        else:
            out.append(ch)
    return "".join(out)


def fmt(ids):
    return " ".join(map(str, ids)) if ids else "-"


def fnv32(ids):
    h = 0x811C9DC5
    for b in struct.pack("<%di" % len(ids), *ids):
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def class_of(ch):
    for k, p in ((1, r"\p{L}"), (2, r"\p{N}"), (3, r"\s")):
        if regex.match(p, ch):
            return k
    return 0


def class_boundaries():
    cls = [class_of(chr(cp)) for cp in range(0x110000)]
    cps = set()
    for cp in range(1, 0x110000):
        if cls[cp] != cls[cp - 1]:
            cps.update((cp - 1, cp))
    cps.update((0, 0x10FFFF))
    return [(cp, cls[cp]) for cp in sorted(cps)], cls


HAND_CASES = [
    "Hello world", "", " ", "  ", "a", " a", "a ", "a  ", "a  b", "a   b", "a\tb", "a \tb", "a\t b", "a\n\nb",
    "a\n \nb", " \n", "\n ", "\t\t\tx", "x\t\t\t", "   leading", "trailing   ", "\r\n", "a\r\nb",
    "I'm", "you're", "we've", "he'll", "she'd", "it's", "don't", "'s", "'S", "IT'S", "It'S", "''s", "'''",
    "x 's", "x's's", "'ll've", "'re'", "rock'n'roll", "'", " '", "O'Neil's", "'Tis", "'tis",
    "123", " 123", "1,000,000.50", "3.14159", "a1b2c3", "٣٤٥ and ²³ and ½ and Ⅻ", "x²", "₀₁",
    "hello!!!", " !!!", "?!?", "...", " ...", "(parens) [brackets] {braces}", "a-b_c", "#hashtag @user",
    "email@example.com", "http://example.com/path?q=1&r=2", "C++", "$100", "£ 30", "€20",
    "Café Adriatic", "naïve résumé", "cafe\u0301", "e\u0301\u0301x", "Ω≈ç√∫", "Ελληνικά", "Русский текст",
    "中文字符测试", "日本語のテキスト", "한국어 텍스트", "עברית", "العربية", "हिन्दी", "ไทย",
    "emoji 😀😁", " 😀", "👍🏽", "👨\u200d👩\u200d👧", "🇬🇧", "a\u00a0b", "a\u00a0\u00a0b", "\u00a0", "a\u2003b",
    "a\u3000b", "a\u0085b", "a\u2028b", "a\u200bb", "a\ufeffb", "\x1c\x1d\x1e\x1f", "a\x1cb", "a \x1f",
    "\x00", "a\x00b", "\x7f", "ǅungla", "ʰa", "ªº", "ﬁ", "ℌ", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "<|endoftext|>", "a<|endoftext|>b", " <|endoftext|> ", "<|endoftext|><|endoftext|>", "<|endoftext", "<|<|endoftext|>|>",
    "name : The Vaults | Type : pub | price : more than £ 30 | near : Café Adriatic||The Vaults pub . ",
    "abab", "ababab", "aaaa", "aaaaa", "abcabc", " abab", "babab", "xyxyxy", "aaab", "baaa",
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore.",
]
BAD_BYTES = [b"\xff", b"a\xffb", b"\xc3", b"\xc3(", b"\xe2\x82", b"\xe2\x82a", b"\xed\xa0\x80", b"\xc0\x80",
             b"\xf4\x90\x80\x80", b"\xf8\x88\x80\x80\x80", b"\x80\x80", b" \x80", b"a \xff\xfe b", b"\xf0\x9f\x98",
             b"\xf0\x9f\x98 x", b"caf\xe9", b"'\xffs", b"\xff's"]


def random_cases(rng, n):
    pool = (list("abcXYZ") * 3 + list("0123456789") + ["'", "'", "s", "t", "re", "ve", "ll", "m", "d", "S", "T"] +
            [" "] * 8 + ["  ", "\t", "\n", "\r", "\x0b", "\x0c", "\x1c", "\u00a0", "\u2000", "\u3000", "\u0085"] +
            list(".,!?-_()@#") + ["é", "\u0301", "中", "😀", "٣", "²", "½", "Ⅻ", "ǅ", "ʰ", "ª", "ß", "İ", "ﬁ"] +
            ["<|endoftext|>", "<|", "|>", "\udcff", "\udc80"])
    out = []
    for _ in range(n):
        s = "".join(rng.choice(pool) for _ in range(rng.randint(1, 24)))
        out.append(s.encode("utf-8", "surrogateescape"))
    return out


def adversarial_vocab():
    """Merges whose later lines make pairs that rank below earlier ones: "ab a" comes before "a b"."""
    merges = [("a", "b"), ("ab", "a"), ("b", "a"), ("ab", "ab"), ("x", "y"), ("xy", "x"), ("y", "x")]
    order = [1, 0, 3, 2, 5, 4, 6]  # rank -> merge index: "ab a" (rank 0) before "a b" (rank 1), ...
    ranked = [merges[i] for i in order]
    encoder = {BYTE_ENCODER[b]: b for b in range(256)}
    for a, b in ranked:
        encoder.setdefault(a + b, len(encoder))
    encoder[EOT] = len(encoder)
    return encoder, ranked


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
    args = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = os.path.join(root, "tests", "fixtures", "bpe")
    os.makedirs(os.path.join(out, "toy"), exist_ok=True)
    os.makedirs(os.path.join(out, "adv"), exist_ok=True)
    vocab_dir = os.path.join(args.data, "gpt2-vocab")
    gpt2 = load(os.path.join(vocab_dir, "encoder.json"), os.path.join(vocab_dir, "vocab.bpe"))
    assert gpt2.encode(b"Hello world") == [15496, 995] and gpt2.encoder[EOT] == 50256

    # toy: a prefix of GPT-2's merges keeps GPT-2's ids (id = 256 + rank)
    all_merges = sorted(gpt2.bpe_ranks, key=gpt2.bpe_ranks.get)[:TOY_MERGES]
    id_to_tok = {v: k for k, v in gpt2.encoder.items()}
    toy = {id_to_tok[i]: i for i in range(256)}
    for a, b in all_merges:
        assert a in toy and b in toy, (a, b)
        toy[a + b] = gpt2.encoder[a + b]
    toy[EOT] = len(toy)
    with open(os.path.join(out, "toy", "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(toy, f, ensure_ascii=False)
    with open(os.path.join(out, "toy", "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in all_merges))
    toy_enc = load(os.path.join(out, "toy", "vocab.json"), os.path.join(out, "toy", "merges.txt"))

    adv, adv_merges = adversarial_vocab()
    with open(os.path.join(out, "adv", "encoder.json"), "w", encoding="utf-8") as f:
        json.dump(adv, f, ensure_ascii=True)  # \u escapes: exercises the JSON reader's decoding
    with open(os.path.join(out, "adv", "vocab.bpe"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in adv_merges))
    adv_enc = load(os.path.join(out, "adv", "encoder.json"), os.path.join(out, "adv", "vocab.bpe"))
    # the point of adv: encoder.py's answer differs from merging one occurrence at a time
    # (one occurrence at a time, as a heap of pairs would do, gives "aba" "b" instead)
    assert adv_enc.encode(b"abab") == [adv["abab"]], adv_enc.encode(b"abab")

    bounds, _ = class_boundaries()
    with open(os.path.join(out, "classes.txt"), "w") as f:
        f.write("".join(f"{cp:X} {c}\n" for cp, c in bounds))

    rng = random.Random(1234)
    cases = [s.encode("utf-8") for s in HAND_CASES] + BAD_BYTES + random_cases(rng, 200)
    # every BOUNDARY_EVERY-th character at a class boundary, each next to a letter, a digit, a
    # punctuation mark and a space (so its class shows in the pre-token splits); classes.txt has all
    chars = [chr(cp) for cp, _ in bounds[::BOUNDARY_EVERY] if not 0xD800 <= cp <= 0xDFFF]
    for i in range(0, len(chars), 24):
        s = "".join(c + "a" + c + "1" + c + "!" + c + " " for c in chars[i:i + 24])
        cases.append(s.encode("utf-8"))
    with open(os.path.join(out, "cases.txt"), "w", encoding="utf-8", newline="\n") as f:
        f.write("# generated by tools/bpe_ref.py: text\tpre-token ends\ttoy ids\ttoy ids, specials\tadv ids\tgpt2 ids\n")
        for data in cases:
            row = [escape(data) if data else "-", fmt(pretok_ends(data)), fmt(toy_enc.encode(data)),
                   fmt(toy_enc.encode(data, specials=True)), fmt(adv_enc.encode(data)), fmt(gpt2.encode(data))]
            f.write("\t".join(row) + "\n")

    try:
        from tokenizers import Tokenizer, models, pre_tokenizers, decoders
        hf = Tokenizer(models.BPE.from_file(os.path.join(vocab_dir, "encoder.json"), os.path.join(vocab_dir, "vocab.bpe")))
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        hf.decoder = decoders.ByteLevel()
    except ImportError:
        hf = None
    total = 0
    with open(os.path.join(out, "e2e_sample.txt"), "w") as sample:
        for split in ("train", "valid", "test"):
            lines = open(os.path.join(args.data, "e2e", split + ".txt"), "rb").read().split(b"\n")
            if lines and lines[-1] == b"":
                lines.pop()
            hashes, disagree = [], 0
            for k, line in enumerate(lines):
                ids = gpt2.encode(line)
                hashes.append(fnv32(ids))
                if k % SAMPLE_EVERY == 0:
                    sample.write(f"{split} {k + 1} {fmt(ids)}\n")
                if hf is not None and hf.encode(line.decode("utf-8")).ids != ids:
                    disagree += 1
            with open(os.path.join(out, f"e2e_{split}.fnv32"), "wb") as f:
                f.write(struct.pack("<%dI" % len(hashes), *hashes))
            total += len(lines)
            print(f"{split}: {len(lines)} lines" + (f", HF tokenizers disagrees on {disagree}" if hf else ""),
                  file=sys.stderr)
    print(f"e2e: {total} lines; cases: {len(cases)}; class boundaries: {len(bounds)}; "
          f"regex {regex.__version__}", file=sys.stderr)


if __name__ == "__main__":
    main()
