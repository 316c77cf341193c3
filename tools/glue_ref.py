"""glue_ref.py — reference fixtures for the WordPiece tokenizer and the GLUE metrics.

Run:  .venv/bin/python tools/glue_ref.py   (needs tools/fetch_minilm.sh done first:
      the MiniLM vocabulary is the source of the reduced test vocabulary)
Writes tests/fixtures/glue/:
  wp/vocab.txt, wp/tokenizer_config.json  a reduced BERT-uncased vocabulary (~1,500 tokens: the
                                          pieces of the test texts, every single character, specials)
  wp/tokenizer.json                       the same as BertTokenizerFast saves it
  wp_cases.txt      one case per line: hex(UTF-8 text) TAB space-separated ids from
                    tokenizers' BertTokenizerFast(vocab.txt) (no special tokens); the cased case
                    (do_lower_case False) is prefixed "cased:"
  wp_glue.txt       for the real MiniLM vocabulary and ../shared/data/glue dev sets: FILE COLUMN
                    sentences ids FNV-1a-64 of the id stream (ids as little-endian int32), per column
  pairs_glue.txt    dev sets encoded as model inputs by BertTokenizerFast(a, b, truncation="longest_first",
                    max_length=M): FILE M examples ids FNV(ids) FNV(token_type_ids)
  roberta_tok/, roberta_pairs.txt  a tiny byte-level BPE with RoBERTa's specials and pair encodings
                    by RobertaTokenizerFast (<s> a </s></s> b </s>, longest_first truncation)
  metrics.txt       metric cases: "NAME n", a line of predictions, a line of labels, the value from
                    sklearn (accuracy_score, f1_score, matthews_corrcoef) / scipy (pearsonr, spearmanr)
"""
import json
import os
import struct
import sys

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef
from transformers import BertTokenizerFast

ROOT = os.path.join(os.path.dirname(__file__), "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "glue")
MINILM = os.path.expanduser("~/.cache/lorac/all-MiniLM-L6-v2")
GLUE = os.path.join(ROOT, "..", "shared", "data", "glue")

TEXTS = [
    "Hello, world! This is a test.",
    "Café au lait, naïve résumé — déjà vu?",
    "İstanbul and ÅNGSTRÖM; Straße ﬁne.",
    "Don't stop-believing... (really) [sic] {x} <y> @user #tag $5.00 100% a&b a*b",
    "中文字符测试 and 日本語 かな and 한국어 텍스트",
    "tabs\there\nnew\r\nlines\x0bvt\x0cff\x85nel\u2028ls\u00a0nbsp\u3000ideo",
    "control\x00nul\x01soh\u200bzwsp\ufeffbom\ufffdrepl end",
    "emoji 😀 and symbols ∑∫√ and math ½ ² ①",
    "a" * 101 + " short " + "b" * 100,
    "unaffable supercalifragilisticexpialidocious antidisestablishmentarianism",
    "Ωmega ΣΊΣΥΦΟΣ Привет МИР ελληνικά",
    "x\u0301y\u0308z\u20dd combining e\u0301 ",
    "",
    "   \t  ",
    "it 's a charming and often affecting journey . ",
    "\"Quoted\" 'single' `back` ~tilde^ caret_underscore|pipe\\backslash/slash",
    "Numbers 3.14159, 2,000,000 and 1st 2nd 3rd",
    "hyphen-ated word’s curly “quotes” …ellipsis «guillemets»",
]


def fnv(ids):
    h = 0xcbf29ce484222325
    for b in b"".join(struct.pack("<i", i) for i in ids):
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def reduced_vocab(full):
    keep = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}
    for t in TEXTS:
        keep.update(full.convert_ids_to_tokens(full(t, add_special_tokens=False)["input_ids"]))
    vocab = full.get_vocab()
    for tok in vocab:
        if len(tok) == 1 or (tok.startswith("##") and len(tok) == 3):
            keep.add(tok)
    # a few prefixes so that greedy longest match has choices to make
    for tok in ["un", "##aff", "##able", "super", "##cal", "anti", "##dis", "hell", "##o", "wor", "##ld"]:
        if tok in vocab:
            keep.add(tok)
    return sorted(keep, key=lambda t: vocab[t])


def tokenizer_fixtures():
    full = BertTokenizerFast.from_pretrained(MINILM)
    d = os.path.join(OUT, "wp")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "vocab.txt"), "w", encoding="utf-8") as f:
        for t in reduced_vocab(full):
            f.write(t + "\n")
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        f.write('{"do_lower_case": true, "strip_accents": null, "tokenize_chinese_chars": true}\n')
    small = BertTokenizerFast(vocab_file=os.path.join(d, "vocab.txt"), do_lower_case=True)
    small.backend_tokenizer.save(os.path.join(d, "tokenizer.json"))
    cased = BertTokenizerFast(vocab_file=os.path.join(d, "vocab.txt"), do_lower_case=False)
    with open(os.path.join(OUT, "wp_cases.txt"), "w") as f:
        for t in TEXTS:
            ids = small(t, add_special_tokens=False)["input_ids"]
            f.write(t.encode("utf-8").hex() + "\t" + " ".join(map(str, ids)) + "\n")
        for t in TEXTS:
            ids = cased(t, add_special_tokens=False)["input_ids"]
            f.write("cased:" + t.encode("utf-8").hex() + "\t" + " ".join(map(str, ids)) + "\n")
    # the real vocabulary on the GLUE dev sentences
    cols = {"SST-2": ["sentence"], "MRPC": ["#1 String", "#2 String"], "STS-B": ["sentence1", "sentence2"],
            "RTE": ["sentence1", "sentence2"], "CoLA": [3]}
    lines = []
    for task, cs in cols.items():
        path = os.path.join(GLUE, task, "dev.tsv")
        if not os.path.exists(path):
            continue
        with open(path, encoding="utf-8-sig") as f:
            rows = [r.rstrip("\n").split("\t") for r in f]
        head = rows[0] if task != "CoLA" else None
        body = rows[1:] if head else rows
        for c in cs:
            idx = head.index(c) if head else c
            sents = [r[idx] for r in body]
            stream = []
            for s in sents:
                stream += full(s, add_special_tokens=False)["input_ids"]
            lines.append("%s/dev.tsv %s %d %d %016x" % (task, idx, len(sents), len(stream), fnv(stream)))
    with open(os.path.join(OUT, "wp_glue.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    # sentence pairs as the model sees them: [CLS] a [SEP] b [SEP], type ids, longest_first truncation
    pairs = []
    for task, (ca, cb), maxlen in (("MRPC", ("#1 String", "#2 String"), 32), ("STS-B", ("sentence1", "sentence2"), 24),
                                   ("RTE", ("sentence1", "sentence2"), 64), ("SST-2", ("sentence", None), 16)):
        path = os.path.join(GLUE, task, "dev.tsv")
        if not os.path.exists(path):
            continue
        with open(path, encoding="utf-8-sig") as f:
            rows = [r.rstrip("\n").split("\t") for r in f]
        ia, ib = rows[0].index(ca), (rows[0].index(cb) if cb else None)
        ids, types = [], []
        for r in rows[1:]:
            enc = full(r[ia], r[ib] if cb else None, truncation="longest_first", max_length=maxlen)
            ids += enc["input_ids"]
            types += enc["token_type_ids"]
        pairs.append("%s/dev.tsv %d %d %d %016x %016x" % (task, maxlen, len(rows) - 1, len(ids), fnv(ids), fnv(types)))
    with open(os.path.join(OUT, "pairs_glue.txt"), "w") as f:
        f.write("\n".join(pairs) + "\n")


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + list(range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def roberta_fixtures():
    """A tiny byte-level BPE vocabulary with RoBERTa's specials (<s> 0, <pad> 1, </s> 2, <unk> 3) and
    the pair encodings RobertaTokenizerFast makes with it: wp/../roberta_tok/{vocab.json, merges.txt},
    roberta_pairs.txt: hex(a) TAB hex(b) TAB max_length TAB ids."""
    from transformers import RobertaTokenizerFast
    d = os.path.join(OUT, "roberta_tok")
    os.makedirs(d, exist_ok=True)
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for ch in bytes_to_unicode().values():
        vocab[ch] = len(vocab)
    merges = [("\u0120", "t"), ("h", "e"), ("\u0120t", "he"), ("i", "n"), ("\u0120", "a"), ("o", "n"), ("e", "r")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    json.dump(vocab, open(os.path.join(d, "vocab.json"), "w"), ensure_ascii=False)
    with open(os.path.join(d, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "".join("%s %s\n" % m for m in merges))
    tok = RobertaTokenizerFast(os.path.join(d, "vocab.json"), os.path.join(d, "merges.txt"))
    cases = [("The cat sat on the mat.", "A dog ran in the park!", 64),
             ("Café naïve — done", None, 64),
             ("one two three four five six seven", "eight nine", 20),
             ("short", "a much longer second sentence that will be cut", 16)]
    with open(os.path.join(OUT, "roberta_pairs.txt"), "w") as f:
        for a, b, m in cases:
            ids = tok(a, b, truncation="longest_first", max_length=m)["input_ids"]
            f.write("%s\t%s\t%d\t%s\n" % (a.encode().hex(), (b or "").encode().hex() or "-", m, " ".join(map(str, ids))))


def metric_fixtures():
    rng = np.random.default_rng(5)
    out = []

    def case(name, p, y, v):
        out.append("%s %d\n%s\n%s\n%.12g\n" % (name, len(p), " ".join(map(repr, p)), " ".join(map(repr, y)), v))

    for n in (10, 200):
        y = rng.integers(0, 2, n).tolist()
        p = [yy if rng.random() < 0.7 else 1 - yy for yy in y]
        case("accuracy", p, y, accuracy_score(y, p))
        case("f1", p, y, f1_score(y, p))
        case("mcc", p, y, matthews_corrcoef(y, p))
    y3 = rng.integers(0, 3, 50).tolist()
    p3 = rng.integers(0, 3, 50).tolist()
    case("accuracy", p3, y3, accuracy_score(y3, p3))
    case("mcc", [0] * 8, [0, 1] * 4, matthews_corrcoef([0, 1] * 4, [0] * 8))  # constant predictions: 0
    case("f1", [0] * 6, [0, 1, 0, 1, 0, 0], f1_score([0, 1, 0, 1, 0, 0], [0] * 6, zero_division=0))
    for n in (12, 300):
        y = np.round(rng.uniform(0, 5, n) * 4) / 4  # STS-B-like scores with many ties
        p = np.round((y + rng.normal(0, 1, n)) * 2) / 2
        p, y = [float(x) for x in p], [float(x) for x in y]
        case("pearson", p, y, pearsonr(p, y)[0])
        case("spearman", p, y, spearmanr(p, y)[0])
    with open(os.path.join(OUT, "metrics.txt"), "w") as f:
        f.write("".join(out))


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    metric_fixtures()
    roberta_fixtures()
    if os.path.isdir(MINILM):
        tokenizer_fixtures()
    else:
        print("no", MINILM, ": run tools/fetch_minilm.sh for the tokenizer fixtures", file=sys.stderr)
