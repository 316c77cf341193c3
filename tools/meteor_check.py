#!/usr/bin/env python3
"""The official METEOR of `lorac metrics` against meteor-1.5.jar, on E2E hypotheses that exercise
METEOR's synonym and paraphrase stages. Run through tools/meteor_check.sh (which fetches the data
and checks for Java); Python standard library only.

    tools/meteor_check.py --lorac build/lorac [--data ../shared/data/e2e/test.txt] [--meteor-data DIR]
                          [--out DIR] [--fixture tests/fixtures/meteor --fixture-inputs 16]

Hypotheses, per input of the test set (hypothesis = a perturbed first reference; references = the
others, as tools/metrics_ref.py holds out its fixture's hypotheses):
    heldout     the first reference itself
    synonym     words swapped for WordNet synonyms of theirs (english.synsets), a few dropped
    paraphrase  phrases swapped for their paraphrases (paraphrase-en.gz, 1-3 words), a few dropped
    mixed       both, and a clause moved, so the beam search meets competing multi-word matches
The jar scores them as pycocoevalcap does (Stanford PTBTokenizer, COCO punctuation removal, then
meteor-1.5.jar -l en -norm; its EVAL line gives the per-input and the corpus scores), lorac with
`lorac metrics --meteor-per-input`. Prints the largest differences; exits 1 when one is above 1e-4.
--fixture writes the first --fixture-inputs inputs of each case and the jar's scores of them (the
committed fixture that tests/test_metrics.c checks when the METEOR data is present).
"""
import argparse
import gzip
import os
import random
import re
import subprocess
import sys
import tempfile

from e2e_refs import read_e2e

TOL = 1e-4




WORD = re.compile(r"[A-Za-z]+|[^A-Za-z\s]+")


def words(text):
    return WORD.findall(text)


def load_synonyms(meteor_dir):
    """english.synsets: word -> synsets and synset -> words (one-word lemmas only)."""
    w2s, s2w = {}, {}
    with open(os.path.join(meteor_dir, "english.synsets"), encoding="utf-8") as f:
        lines = f.read().split("\n")
    for i in range(0, len(lines) - 1, 2):
        w, sets = lines[i], lines[i + 1].split()
        if "_" in w or not w.isalpha():
            continue
        w2s[w] = sets
        for s in sets:
            s2w.setdefault(s, []).append(w)
    return w2s, s2w


def load_paraphrases(meteor_dir, vocab):
    """paraphrase-en.gz entries (probability, phrase, paraphrase) whose phrase is made of vocab words."""
    table = {}
    with gzip.open(os.path.join(meteor_dir, "paraphrase-en.gz"), "rt", encoding="utf-8") as f:
        while True:
            if not f.readline():
                break
            ref, par = f.readline().split(), f.readline().split()
            if 1 <= len(ref) <= 3 and 1 <= len(par) <= 3 and all(w in vocab for w in ref):
                table.setdefault(tuple(ref), []).append(par)
    return table


def synonym_swap(toks, rng, w2s, s2w, rate=0.35):
    out = []
    for t in toks:
        low = t.lower()
        if low in w2s and rng.random() < rate:
            cands = sorted({w for s in w2s[low] for w in s2w.get(s, []) if w != low})
            if cands:
                out.append(rng.choice(cands))
                continue
        if rng.random() < 0.05:
            continue  # dropped
        out.append(t)
    return out


def paraphrase_swap(toks, rng, table, rate=0.35):
    out, i = [], 0
    while i < len(toks):
        done = False
        if rng.random() < rate:
            for n in (3, 2, 1):
                key = tuple(w.lower() for w in toks[i:i + n])
                if len(key) == n and key in table:
                    out.extend(rng.choice(table[key]))
                    i += n
                    done = True
                    break
        if not done:
            if rng.random() >= 0.05:
                out.append(toks[i])
            i += 1
    return out


def make_cases(groups, meteor_dir):
    w2s, s2w = load_synonyms(meteor_dir)
    vocab = {w.lower() for _, rs in groups for r in rs for w in words(r)}
    table = load_paraphrases(meteor_dir, vocab)
    print("meteor_check: %d synonym words, %d paraphrased phrases of the E2E vocabulary" % (len(w2s), len(table)),
          file=sys.stderr)
    rng = random.Random(20)
    cases = {"heldout": [], "synonym": [], "paraphrase": [], "mixed": []}
    for _, rs in groups:
        toks = words(rs[0])
        cases["heldout"].append(rs[0])
        cases["synonym"].append(" ".join(synonym_swap(toks, rng, w2s, s2w)))
        cases["paraphrase"].append(" ".join(paraphrase_swap(toks, rng, table)))
        mixed = paraphrase_swap(synonym_swap(toks, rng, w2s, s2w, 0.2), rng, table, 0.25)
        cut = mixed.index(",") if "," in mixed else len(mixed) // 2
        cases["mixed"].append(" ".join(mixed[cut + 1:] + mixed[:cut]))
    return cases


def jar_scores(meteor_dir, hyps, refss):
    """pycocoevalcap's pipeline: PTBTokenizer, then meteor-1.5.jar -l en -norm (corpus, per input)."""
    sys.path.insert(0, meteor_dir)
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
    gts = {i: [{"caption": r} for r in rs] for i, rs in enumerate(refss)}
    res = {i: [{"caption": h}] for i, h in enumerate(hyps)}
    tok = PTBTokenizer()
    gts, res = tok.tokenize(gts), tok.tokenize(res)
    m = Meteor()
    score, per = m.compute_score(gts, res)
    return score, per


def lorac_scores(lorac, meteor_dir, refs_path, hyp_path, tmp):
    per_path = os.path.join(tmp, "per_input.txt")
    out = subprocess.run([lorac, "metrics", "--refs", refs_path, "--hyps", hyp_path, "--meteor-data", meteor_dir,
                          "--meteor-per-input", per_path, "--json"], check=True, capture_output=True, text=True).stdout
    m = re.search(r'"METEOR": ([0-9.e-]+), "METEOR_version": "official', out)
    if not m:
        sys.exit("meteor_check: lorac did not report the official METEOR:\n" + out)
    with open(per_path) as f:
        per = [float(x) for x in f]
    es = float(re.search(r'"METEOR_exact_stem": ([0-9.]+)', out).group(1))
    return float(m.group(1)), per, es


def write_set(dirname, groups, cases, n):
    os.makedirs(dirname, exist_ok=True)
    with open(os.path.join(dirname, "refs.txt"), "w", encoding="utf-8") as f:
        for ctx, rs in groups[:n]:
            for r in rs[1:]:
                f.write("%s||%s\n" % (ctx, r))
    for name, hyps in cases.items():
        with open(os.path.join(dirname, "hyp_%s.txt" % name), "w", encoding="utf-8") as f:
            f.write("".join(h + "\n" for h in hyps[:n]))


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser()
    ap.add_argument("--lorac", default=os.path.join(root, "build", "lorac"))
    ap.add_argument("--data", default=os.path.join(root, "..", "shared", "data", "e2e", "test.txt"))
    ap.add_argument("--meteor-data", required=True)
    ap.add_argument("--out", help="keep the generated files here (default: a temporary folder)")
    ap.add_argument("--fixture", help="write the committed fixture here")
    ap.add_argument("--fixture-inputs", type=int, default=16)
    a = ap.parse_args()
    groups = [g for g in read_e2e(a.data) if len(g[1]) >= 2]
    cases = make_cases(groups, a.meteor_data)
    refss = [rs[1:] for _, rs in groups]
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        out = a.out or tmp
        write_set(out, groups, cases, len(groups))
        print("%-11s %7s %14s %14s %10s %13s %11s" % ("case", "inputs", "jar", "lorac", "|d| corpus", "max |d| input",
                                                     "exact+stem"))
        for name, hyps in cases.items():
            jar, jar_per = jar_scores(a.meteor_data, hyps, refss)
            lo, lo_per, es = lorac_scores(a.lorac, a.meteor_data, os.path.join(out, "refs.txt"),
                                      os.path.join(out, "hyp_%s.txt" % name), tmp)
            d_in = max(abs(x - y) for x, y in zip(jar_per, lo_per))
            print("%-11s %7d %14.10f %14.10f %10.2e %13.2e %11.6f" % (name, len(hyps), jar, lo, abs(jar - lo), d_in, es))
            worst = max(worst, abs(jar - lo), d_in)
        if a.fixture:
            n = a.fixture_inputs
            write_set(a.fixture, groups, cases, n)
            with open(os.path.join(a.fixture, "expected.txt"), "w") as f:
                for name, hyps in cases.items():
                    jar, jar_per = jar_scores(a.meteor_data, hyps[:n], refss[:n])
                    f.write("%s METEOR %.10f\n" % (name, jar))
                    f.write("".join("%s %d %.10f\n" % (name, i, s) for i, s in enumerate(jar_per)))
            print("meteor_check: wrote %s (%d inputs per case)" % (a.fixture, n), file=sys.stderr)
    print("meteor_check: largest difference %.2e (%s 1e-4)" % (worst, "within" if worst <= TOL else "ABOVE"))
    return 0 if worst <= TOL else 1


if __name__ == "__main__":
    sys.exit(main())
