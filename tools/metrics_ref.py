#!/usr/bin/env python3
"""Reference scores for `lorac metrics` (the E2E NLG challenge metrics), from the official implementations.

Run (from the repository root, with ../shared/data present and Java on PATH):
    .venv/bin/python tools/metrics_ref.py [--data ../shared/data/e2e/test.txt] [--groups 100]
    .venv/bin/python tools/metrics_ref.py --probe-ptb   (the jar's classes of non-ASCII characters)

Writes tests/fixtures/metrics/:
    refs.txt          the first --groups inputs of test.txt (those with >= 2 references) in the E2E
                      `context||reference` format, minus each input's first reference
    hyp_heldout.txt   each input's first reference, held out as the hypothesis
    hyp_shifted.txt   a harder hypothesis: the held-out reference of the *next* input, with every
                      fifth token dropped (so the scores are far from 1 and length penalties act)
    hyp_nonascii.txt  the held-out reference with non-ASCII text (mojibake, curly quotes, symbols,
                      capitals beyond ASCII: nonascii() below), as generated outputs hold
    hyp_scrambled.txt the held-out reference scrambled (shuffled, sorted, padded with repeated words,
                      or given spurious plural s), so METEOR's beam search meets many competing
                      alignments and its stem stage has work to do
    expected.txt      `<case> <metric> <value>` for both hypothesis files
    expected_full.txt the same for the whole test set (hypothesis = first reference of each input
                      with >= 2 references, refs = the rest); used only when ../shared is present

Where each number comes from (the pipeline of tuetschek/e2e-metrics measure_scores.py):
    BLEU, NIST   the e2e-metrics Python port of mteval-v13a (metrics/pymteval.py: BLEUScore(),
                 NISTScore(), case-insensitive, its own tokenizer), re-implemented below from its
                 published rules (BLEU-4 with the tiny-epsilon smoothing, NIST-5 with beta from
                 mteval-v13a, closest-ref length with ties to the shorter). nltk's corpus_bleu is
                 printed as a cross-check only.
    METEOR       pycocoevalcap 1.2 (meteor-1.5.jar -l en -norm, all four modules) after the Stanford
                 PTBTokenizer (-lowerCase) and COCO punctuation removal, exactly as COCOEvalCap does.
    METEOR_ES    the same jar restricted to the exact and stem modules (-m "exact stem" -w "1.0 0.6"),
                 which is what lorac implements.
    ROUGE_L      pycocoevalcap Rouge (beta 1.2) on the PTB-tokenized text.
    CIDEr        pycocoevalcap Cider (CIDEr-D: sigma 6, n 4, clipping, x10) on the PTB-tokenized text.
"""
import argparse
import math
import os
import random
import re
import subprocess
import sys
from collections import defaultdict

from e2e_refs import read_e2e

from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor import meteor as meteor_mod
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer


# ---------------------------------------------------------------- BLEU / NIST (pymteval rules)
def mteval_tokenize(s):
    # the e2e-metrics port of mteval-v13a's basic tokenization
    s = s.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    s = s.replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    s = " " + s + " "
    s = re.sub(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])", r" \1 ", s)
    s = re.sub(r"([^0-9])([\.,])", r"\1 \2 ", s)
    s = re.sub(r"([\.,])([^0-9])", r" \1 \2", s)
    s = re.sub(r"([0-9])(-)", r"\1 \2 ", s)
    s = re.sub(r"\s+", " ", s).strip()
    return s.split(" ")


def ngram_list(n, toks):
    toks = [t.lower() for t in toks]
    return [tuple(toks[i:i + n]) for i in range(len(toks) - n + 1)]


def ngram_counts(n, toks):
    c = defaultdict(int)
    for g in ngram_list(n, toks):
        c[g] += 1
    return c


def max_ref_counts(n, refs):
    m = {}
    for r in refs:
        for g, c in ngram_counts(n, r).items():
            m[g] = max(m.get(g, 0), c)
    return m


def bleu_pymteval(hyps, refss, max_n=4):
    hits = [0] * max_n
    cand = [0] * max_n
    ref_len = 0
    for h, rs in zip(hyps, refss):
        h = mteval_tokenize(h)
        rs = [mteval_tokenize(r) for r in rs]
        for i in range(max_n):
            mr = max_ref_counts(i + 1, rs)
            hits[i] += sum(min(mr.get(g, 0), c) for g, c in ngram_counts(i + 1, h).items())
            cand[i] += len(h) - i  # may go negative for short hypotheses, as in pymteval
        ref_len += min((abs(len(r) - len(h)), len(r)) for r in rs)[1]
    bp = 1.0
    if cand[0] <= ref_len:
        bp = math.exp(1.0 - ref_len / (float(cand[0]) if cand[0] else 1e-5))
    logsum = 0.0
    for nh, nl in zip(hits, cand):
        logsum += math.log(max(nh, 1e-15) / max(nl, 1e-9))
    return bp * math.exp(logsum / max_n)


def nist_pymteval(hyps, refss, max_n=5):
    beta = -math.log(0.5) / math.log(1.5) ** 2
    ref_ngrams = [defaultdict(int) for _ in range(max_n + 1)]
    hit_ngrams = [[] for _ in range(max_n)]
    cand = [0] * max_n
    avg_ref_len = 0.0
    for h, rs in zip(hyps, refss):
        h = mteval_tokenize(h)
        rs = [mteval_tokenize(r) for r in rs]
        for n in range(max_n):
            cand[n] += len(h) - n
            mr = max_ref_counts(n + 1, rs)
            hits = {}
            for g, c in ngram_counts(n + 1, h).items():
                k = min(c, mr.get(g, 0))
                if k:
                    hits[g] = k
            hit_ngrams[n].append(hits)
            for r in rs:
                for g in ngram_list(n + 1, r):
                    ref_ngrams[n + 1][g] += 1
        total = sum(len(r) for r in rs)
        ref_ngrams[0][()] += total
        avg_ref_len += total / float(len(rs))

    def info(g):
        if g not in ref_ngrams[len(g)]:
            return 0.0
        return math.log(ref_ngrams[len(g) - 1][g[:-1]] / float(ref_ngrams[len(g)][g]), 2)

    s = 0.0
    for n in range(max_n):
        hi = sum(info(g) * k for hits in hit_ngrams[n] for g, k in hits.items())
        s += hi / cand[n]
    ratio = cand[0] / float(avg_ref_len)
    if ratio >= 1:
        bp = 1.0
    elif ratio <= 0:
        bp = 0.0
    else:
        bp = math.exp(-beta * math.log(ratio) ** 2)
    return bp * s


# ---------------------------------------------------------------- COCO metrics
def coco_scores(hyps, refss):
    gts = {i: [{"caption": r} for r in rs] for i, rs in enumerate(refss)}
    res = {i: [{"caption": h}] for i, h in enumerate(hyps)}
    tok = PTBTokenizer()
    gts = tok.tokenize(gts)
    res = tok.tokenize(res)
    out = {}
    out["METEOR"], _ = Meteor().compute_score(gts, res)
    m = Meteor()
    # the same jar, restricted to the exact and stem modules
    m.meteor_p.kill()
    m.meteor_p.wait()
    m.meteor_cmd = m.meteor_cmd + ["-m", "exact stem", "-w", "1.0 0.6"]
    m.meteor_p = subprocess.Popen(m.meteor_cmd, cwd=os.path.dirname(os.path.abspath(meteor_mod.__file__)),
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out["METEOR_ES"], _ = m.compute_score(gts, res)
    out["ROUGE_L"], _ = Rouge().compute_score(gts, res)
    out["CIDEr"], _ = Cider().compute_score(gts, res)
    return out


def all_scores(hyps, refss):
    s = {"BLEU": bleu_pymteval(hyps, refss), "NIST": nist_pymteval(hyps, refss)}
    s.update(coco_scores(hyps, refss))
    try:  # cross-check only: nltk's BLEU on the same tokens (not committed)
        from nltk.translate.bleu_score import corpus_bleu
        nb = corpus_bleu([[[t.lower() for t in mteval_tokenize(r)] for r in rs] for rs in refss],
                         [[t.lower() for t in mteval_tokenize(h)] for h in hyps])
        print("  nltk corpus_bleu cross-check: %.6f (pymteval rules: %.6f)" % (nb, s["BLEU"]), file=sys.stderr)
    except ImportError:
        pass
    return s


def shifted(heldout):
    out = []
    for i in range(len(heldout)):
        toks = heldout[(i + 1) % len(heldout)].split(" ")
        out.append(" ".join(t for j, t in enumerate(toks) if j % 5 != 4))
    return out


def scrambled(heldout, refss):
    rng = random.Random(0)
    out = []
    for i, h in enumerate(heldout):
        toks = h.split(" ")
        mode = i % 4
        if mode == 0:
            rng.shuffle(toks)
        elif mode == 1:
            toks = toks + rng.choice(refss[i]).split(" ")[:5] + toks[:4]
        elif mode == 2:
            toks = [t + ("s" if rng.random() < 0.3 else "") for t in toks]
        else:
            toks = sorted(toks)
        out.append(" ".join(toks))
    return out


def mojibake(text):
    """UTF-8 read as cp1252 (Latin-1 where cp1252 has no character): "Caf\u00e9" -> "Caf\u00c3\u00a9"."""
    out = []
    for b in text.encode("utf-8"):
        try:
            out.append(bytes([b]).decode("cp1252"))
        except UnicodeDecodeError:
            out.append(chr(b))
    return "".join(out)


def nonascii(heldout):
    """The held-out references with the non-ASCII text generated outputs meet: mojibake of accented
    letters and of the pound sign (as a byte-level BPE model spells them through byte tokens), curly
    quotes and apostrophes, dashes, symbols that PTB splits off (copyright, degree, fractions,
    trade mark), guillemets, the soft hyphen, capitals of Latin-1 and Latin Extended-A."""
    rng = random.Random(1)
    out = []
    for i, h in enumerate(heldout):
        toks = h.split(" ")
        j = rng.randrange(len(toks))
        mode = i % 8
        if mode == 0:
            h = " ".join(toks).replace("\u00a3", mojibake("\u00a3"))
            h = h.replace(toks[j], mojibake("Caf\u00e9"), 1)
        elif mode == 1:
            toks[j] = mojibake(toks[j] + "\u00e9s") + "\u00a9"
            h = " ".join(toks).replace("'", "\u2019")
        elif mode == 2:
            toks.insert(j, rng.choice(["\u2013", "\u2014", "\u00ab" + toks[j] + "\u00bb", "\u201c" + toks[j] + "\u201d"]))
            h = " ".join(toks).replace("\u00a3", "\u20ac")
        elif mode == 3:
            toks[j] = toks[j][:2] + "\u00ad" + toks[j][2:] + rng.choice(["\u00b0C", "\u00bd", "\u2122", "\u00ae", "\u00d7"])
            h = " ".join(toks)
        elif mode == 4:
            toks[j] = toks[j].upper() + "\u0152UVRE \u00c9COLE \u0178 \u0141\u00d3D\u0179 \u0130S"
            h = " ".join(toks)
        elif mode == 5:
            h = mojibake(" ".join(toks).replace("'", "\u2019").replace("\u00a3", "\u00a320\u2013\u00a325 "))
        elif mode == 6:
            toks[j] = toks[j] + "\u2026 it\u2019s n\u2019t don\u2019t \u2018x\u2019 a\u2010b \u2010c"
            h = " ".join(toks)
        else:
            toks[j] = "\u00bf" + toks[j] + "\u00a1 \u00a7 \u00b7 \u2022 \u00b2 5\u00bc"
            h = " ".join(toks)
        out.append(h)
    return out


ORDER = ["BLEU", "NIST", "METEOR", "METEOR_ES", "ROUGE_L", "CIDEr"]


def probe_ptb():
    """Prints what PTBTokenizer (-preserveLines -lowerCase) does with each code point of the blocks
    src/metrics/tokenize.c's ptb_class() describes, in the context "xa?bx": word (kept in the word),
    own (a token of its own), drop (deleted, splitting the word) or the rewritten token."""
    from collections import defaultdict
    jar = os.path.join(os.path.dirname(os.path.abspath(PTBTokenizer.__module__ and
                                                        sys.modules[PTBTokenizer.__module__].__file__)),
                       "stanford-corenlp-3.4.1.jar")
    line_breaks = {0x85, 0x2028, 0x2029, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E}
    cps = [c for c in list(range(0x80, 0x370)) + list(range(0x2010, 0x2060)) + list(range(0x20A0, 0x20C0))
           if c not in line_breaks]
    text = "".join("xa%sbx\n" % chr(c) for c in cps).encode("utf-8")
    out = subprocess.run(["java", "-cp", jar, "edu.stanford.nlp.process.PTBTokenizer", "-preserveLines",
                          "-lowerCase"], input=text, capture_output=True).stdout.decode("utf-8").split("\n")
    groups = defaultdict(list)
    for c, o in zip(cps, out):
        ch = chr(c).lower()
        kind = {"xa%sbx" % ch: "word", "xa %s bx" % ch: "own", "xa bx": "drop", "xabx": "deleted in the word"}.get(o)
        groups[kind or "rewritten: " + o].append("%04X" % c)
    for kind, v in groups.items():
        print("%s (%d): %s" % (kind, len(v), " ".join(v)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--probe-ptb", action="store_true", help="print PTB's treatment of non-ASCII characters")
    ap.add_argument("--data", default="../shared/data/e2e/test.txt")
    ap.add_argument("--out", default="tests/fixtures/metrics")
    ap.add_argument("--groups", type=int, default=100)
    a = ap.parse_args()
    if a.probe_ptb:
        return probe_ptb()
    os.makedirs(a.out, exist_ok=True)
    groups = [g for g in read_e2e(a.data) if len(g[1]) >= 2]

    sub = groups[:a.groups]
    with open(os.path.join(a.out, "refs.txt"), "w", encoding="utf-8") as f:
        for ctx, rs in sub:
            for r in rs[1:]:
                f.write("%s||%s\n" % (ctx, r))
    held = [rs[0] for _, rs in sub]
    refss = [rs[1:] for _, rs in sub]
    cases = {"heldout": held, "shifted": shifted(held), "scrambled": scrambled(held, refss),
             "nonascii": nonascii(held)}
    lines = []
    for name, hyps in cases.items():
        with open(os.path.join(a.out, "hyp_%s.txt" % name), "w", encoding="utf-8") as f:
            f.write("".join(h + "\n" for h in hyps))
        print("case %s" % name, file=sys.stderr)
        s = all_scores(hyps, refss)
        lines += ["%s %s %.10f" % (name, k, s[k]) for k in ORDER]
    with open(os.path.join(a.out, "expected.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")

    print("case full", file=sys.stderr)
    s = all_scores([rs[0] for _, rs in groups], [rs[1:] for _, rs in groups])
    with open(os.path.join(a.out, "expected_full.txt"), "w") as f:
        f.write("".join("full %s %.10f\n" % (k, s[k]) for k in ORDER))
    print(open(os.path.join(a.out, "expected.txt")).read() + open(os.path.join(a.out, "expected_full.txt")).read())


if __name__ == "__main__":
    main()
