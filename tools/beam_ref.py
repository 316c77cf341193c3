#!/usr/bin/env python3
"""Reference decoding fixtures for lorac's src/gen (greedy, beam search, logits processors/warpers).

Run:  .venv/bin/python tools/beam_ref.py        (from the repository root; transformers 4.40.2)
Writes tests/fixtures/gen/decode.txt (a few KB of text), read by tests/test_beam.c and
tests/test_sampler.c.

The model is a toy causal LM defined by integer hashing, so C and Python compute bit-identical
float32 logits without sharing a table. For a sequence whose last token is `last`, the token before
it `prev` (-1 when there is none) and whose length is `n`:
    u(k, a, b, v) = (mix32(k*0x9e3779b9 + mix32(a*0x85ebca6b + mix32(b*0xc2b2ae35 + v))) >> 8) / 2^24
    logit[v] = float32( 4*u(2s+1, last+1, prev+1, v) - 2  +  2*u(2s+2, n, 0, v) - 1
                        + (boost*n if v in boost_ids else 0) )
(mix32 is the murmur-style finaliser below; every product and sum is mod 2^32; the sum is exact in
double.) boost makes end-of-text likelier as a sequence grows, so beams finish at varied lengths.

Cases:
  hf_*    transformers' generate() on the toy model wrapped as a PreTrainedModel: greedy with
          repetition_penalty / no_repeat_ngram_size / min_new_tokens / several eos ids, and beam
          search with length_penalty, early_stopping (False, True, "never"), n-best. Scores:
          greedy = sum of log_softmax(processed scores)[chosen]; beam = sequences_scores.
  lora_*  the LoRA paper's beam search (microsoft/LoRA examples/NLG/src/gpt2_beam.py), written
          out here from its semantics with the same torch float32 operations (processors on raw
          logits, log(softmax), top num_beams, eos slots set to -inf, strict-improvement best, all
          steps run).
  warp    rows run through HF's RepetitionPenalty, NoRepeatNGram, Temperature, TopK and TopP
          processors: sampling is compared through the processed distribution, not draws.

Format (whitespace-separated; floats as %.9g, inf as inf/-inf):
  toy V seed boost n_boost id...
  case NAME algo hf|lora beams NB lp LP early E ngram N rep R min_new M max_new M nret R
       eos n id... prompt n id...            (one line)  then nret lines:
  hyp SCORE FINISHED n tok...                (generated tokens; HF appends eos[0] when finished)
  warp NAME temp T topk K topp P rep R ngram N hist n id...   then two lines:
  in V floats / out V floats
"""
import math
import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.generation.logits_process import (
    LogitsProcessorList,
    NoRepeatNGramLogitsProcessor,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)
from transformers.modeling_outputs import CausalLMOutputWithPast

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "gen", "decode.txt")
M32 = 0xFFFFFFFF

V, SEED, BOOST, BOOST_IDS = 48, 3, 0.125, [2, 7]


def mix32(x):
    x &= M32
    x ^= x >> 16
    x = (x * 0x7FEB352D) & M32
    x ^= x >> 15
    x = (x * 0x846CA68B) & M32
    x ^= x >> 16
    return x


def u(k, a, b, v):
    h = mix32(k * 0x9E3779B9 + mix32(a * 0x85EBCA6B + mix32(b * 0xC2B2AE35 + v)))
    return (h >> 8) / 16777216.0


def toy_logits(prev, last, n):
    row = np.empty(V, dtype=np.float32)
    for v in range(V):
        x = 4.0 * u(2 * SEED + 1, last + 1, prev + 1, v) - 2.0 + 2.0 * u(2 * SEED + 2, n, 0, v) - 1.0
        if v in BOOST_IDS:
            x += BOOST * n
        row[v] = np.float32(x)
    return row


_cache = {}


def logits_for(seq):
    key = (seq[-2] if len(seq) > 1 else -1, seq[-1], len(seq))
    if key not in _cache:
        _cache[key] = toy_logits(*key)
    return _cache[key]


class ToyConfig(PretrainedConfig):
    model_type = "lorac_toy"

    def __init__(self, vocab_size=V, **kw):
        super().__init__(**kw)
        self.vocab_size = vocab_size


class ToyLM(PreTrainedModel):
    config_class = ToyConfig

    def __init__(self, config):
        super().__init__(config)
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask=None, return_dict=True, **kw):
        ids = input_ids.tolist()
        out = np.zeros((len(ids), len(ids[0]), V), dtype=np.float32)
        for b, seq in enumerate(ids):
            for t in range(len(seq)):
                out[b, t] = logits_for(seq[: t + 1])
        return CausalLMOutputWithPast(logits=torch.from_numpy(out))

    def prepare_inputs_for_generation(self, input_ids, **kw):
        return {"input_ids": input_ids}


def fmt(x):
    x = float(x)
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return "%.9g" % x


def case_line(name, algo, p):
    return ("case %s algo %s beams %d lp %.17g early %d ngram %d rep %.9g min_new %d max_new %d nret %d "
            "eos %d %s prompt %d %s" % (
                name, algo, p["beams"], p["lp"], p["early"], p["ngram"], p["rep"], p["min_new"],
                p["max_new"], p["nret"], len(p["eos"]), " ".join(map(str, p["eos"])),
                len(p["prompt"]), " ".join(map(str, p["prompt"]))))


EARLY = {0: False, 1: True, 2: "never"}


def run_hf(model, p):
    prompt = torch.tensor([p["prompt"]])
    kw = dict(max_new_tokens=p["max_new"], eos_token_id=p["eos"], pad_token_id=p["eos"][0],
              repetition_penalty=p["rep"], no_repeat_ngram_size=p["ngram"], do_sample=False,
              output_scores=True, return_dict_in_generate=True, use_cache=False)
    if p["min_new"]:
        kw["min_new_tokens"] = p["min_new"]
    if p["beams"] > 1:
        kw.update(num_beams=p["beams"], length_penalty=p["lp"], early_stopping=EARLY[p["early"]],
                  num_return_sequences=p["nret"])
    out = model.generate(prompt, **kw)
    P = len(p["prompt"])
    hyps = []
    for r in range(out.sequences.shape[0]):
        gen = out.sequences[r, P:].tolist()
        finished = 0
        for i, t in enumerate(gen):
            if t in p["eos"]:
                gen = gen[: i + 1]  # beyond the first eos is padding
                finished = 1
                break
        if p["beams"] > 1:
            score = out.sequences_scores[r].item()
        else:
            score = sum(F.log_softmax(s[0], dim=-1)[t].item() for s, t in zip(out.scores, gen))
        hyps.append((score, finished, gen))
    return hyps


def run_lora(p):
    """The paper's beam search on the toy model (batch of one), float32 torch ops as in gpt2_beam.py."""
    nb, lp, eos, M = p["beams"], p["lp"], p["eos"], p["max_new"]
    prompt = p["prompt"]
    hist = [[] for _ in range(nb)]
    scores = torch.zeros(nb)
    best, best_seq = None, None
    for i in range(M):
        x = torch.from_numpy(np.stack([logits_for(prompt + h) for h in hist]))
        if p["rep"] != 1.0 and i > 0:
            for b in range(nb):
                for t in set(hist[b]):
                    if x[b, t] < 0:
                        x[b, t] *= p["rep"]
                    else:
                        x[b, t] /= p["rep"]
        if i < p["min_new"]:
            x[:, eos] = -float("inf")
        n = p["ngram"]
        if n > 0 and i > 0 and i + 1 >= n:
            for b in range(nb):
                h = hist[b]
                prefix = tuple(h[i + 1 - n:i])
                for j in range(len(h) - n + 1):
                    if tuple(h[j:j + n - 1]) == prefix:
                        x[b, h[j + n - 1]] = -float("inf")
        logp = torch.log(F.softmax(x, dim=-1))
        cand = logp[0] if i == 0 else (scores.unsqueeze(-1) + logp).view(-1)
        top_s, top_i = torch.topk(cand, nb, largest=True, sorted=True)
        src, tok = (top_i // V).tolist(), (top_i % V).tolist()
        hist = [hist[s] + [t] for s, t in zip(src, tok)]
        scores = top_s.clone()
        for b in range(nb):
            if tok[b] in eos:
                f = scores[b] / ((i + 1) ** lp)
                if best is None or best < f:
                    best, best_seq = f, list(hist[b])
                scores[b] = -float("inf")
    for b in range(nb):
        f = scores[b] / (M ** lp)
        if best is None or best < f:
            best, best_seq = f, list(hist[b])
    return [(best.item(), int(best_seq[-1] in eos), best_seq)]


def params(**kw):
    p = dict(beams=1, lp=1.0, early=0, ngram=0, rep=1.0, min_new=0, max_new=12, nret=1, eos=[2],
             prompt=[5, 9, 13])
    p.update(kw)
    return p


HF_CASES = [
    ("hf_greedy", params(max_new=16)),
    ("hf_greedy_penalties", params(rep=1.7, ngram=2, min_new=3, max_new=18, prompt=[11, 4, 11, 30])),
    ("hf_greedy_two_eos", params(eos=[2, 7], max_new=20, prompt=[1])),
    ("hf_beam4", params(beams=4, max_new=10)),
    ("hf_beam5_lp08_ngram_rep_nbest", params(beams=5, lp=0.8, ngram=3, rep=1.3, max_new=14, nret=3)),
    ("hf_beam3_neg_lp_early_true", params(beams=3, lp=-0.5, early=1, max_new=12, prompt=[40, 41])),
    ("hf_beam4_lp2_never_two_eos", params(beams=4, lp=2.0, early=2, max_new=12, eos=[2, 7], nret=4)),
    ("hf_beam2_min_new", params(beams=2, min_new=4, max_new=8, prompt=[17, 3, 22, 8, 8])),
    ("hf_beam6_long_ngram2", params(beams=6, lp=1.2, ngram=2, max_new=24, eos=[2], prompt=[0], nret=2)),
    ("hf_beam4_short_nbest", params(beams=4, max_new=4, nret=4, eos=[2, 7])),
    ("hf_beam5_never_lp15", params(beams=5, lp=1.5, early=2, max_new=10, nret=5)),
    ("hf_beam3_eos_crowd", params(beams=3, lp=2.0, early=2, min_new=35, max_new=40, eos=[2, 7], nret=3,
                                  prompt=[6])),
    ("hf_beam3_lp_neg_nbest", params(beams=3, lp=-0.5, max_new=9, nret=3)),
    ("hf_beam2_never_lp1", params(beams=2, lp=1.0, early=2, max_new=30, prompt=[17, 3])),
    ("hf_beam2_heuristic_lp1", params(beams=2, lp=1.0, early=0, max_new=30, prompt=[17, 3])),
    ("hf_beam3_never_lp0", params(beams=3, lp=0.0, early=2, ngram=3, max_new=16, prompt=[33, 12])),
    ("hf_beam8_early_true_lp1_rep", params(beams=8, lp=1.0, early=1, rep=0.8, max_new=20, eos=[7, 2],
                                           prompt=[9, 9, 9], nret=8)),
]
LORA_CASES = [
    ("lora_beam4", params(beams=4, lp=0.8, ngram=4, max_new=16)),
    ("lora_e2e_like", params(beams=10, lp=0.8, ngram=2, rep=1.2, min_new=2, max_new=20, eos=[2, 7],
                             prompt=[3, 1, 4, 1, 5, 9, 2, 6])),
    ("lora_beam3_lp0", params(beams=3, lp=0.0, ngram=3, max_new=10, prompt=[44])),
    ("lora_beam5_lp_neg", params(beams=5, lp=-1.0, max_new=12, prompt=[20, 21])),
    ("lora_beam1", params(beams=1, lp=0.8, ngram=2, max_new=12)),
    ("lora_unfinished_min_new", params(beams=3, lp=0.8, min_new=5, max_new=5, prompt=[8, 8])),
    ("lora_lp3_short", params(beams=4, lp=3.0, max_new=8, eos=[2, 7], prompt=[30, 31, 32])),
    ("lora_beam5_long", params(beams=5, lp=1.0, ngram=2, max_new=21, prompt=[40, 41, 6])),
    ("lora_ngram1", params(beams=4, lp=0.8, ngram=1, max_new=14)),
    ("lora_rep_strong", params(beams=3, lp=1.0, rep=2.5, max_new=12, prompt=[5, 9, 13, 15, 39, 24])),
]


def warp_cases():
    rows = [toy_logits(4, 9, 6), toy_logits(-1, 30, 1), toy_logits(12, 12, 9)]
    ties = np.array([1.0, 3.0, 3.0, 0.5, 3.0, -2.0, 1.0, 1.0] + [-4.0] * (V - 8), dtype=np.float32)
    hist = [3, 9, 3, 11, 9, 3, 11]
    cases = [
        ("rep_pen", rows[0], dict(rep=1.5, hist=hist)),
        ("ngram3", rows[1], dict(ngram=3, hist=hist + [3, 9])),
        ("ngram1", rows[1], dict(ngram=1, hist=hist)),
        ("temp07", rows[0], dict(temp=0.7)),
        ("topk5", rows[0], dict(topk=5)),
        ("topk_ties", ties, dict(topk=2)),
        ("topp09", rows[1], dict(topp=0.9)),
        ("topp03_temp13", rows[2], dict(temp=1.3, topp=0.3)),
        ("topp_tiny", rows[2], dict(topp=1e-6)),
        ("topk10_topp08_temp05", rows[2], dict(temp=0.5, topk=10, topp=0.8)),
        ("all", rows[0], dict(rep=1.3, ngram=2, hist=hist, temp=0.9, topk=12, topp=0.85)),
    ]
    return cases


def run_warp(row, w):
    hist = w.get("hist", [])
    procs = []
    if w.get("rep", 1.0) != 1.0:
        procs.append(RepetitionPenaltyLogitsProcessor(w["rep"]))
    if w.get("ngram", 0):
        procs.append(NoRepeatNGramLogitsProcessor(w["ngram"]))
    if w.get("temp", 1.0) != 1.0:
        procs.append(TemperatureLogitsWarper(w["temp"]))
    if w.get("topk", 0):
        procs.append(TopKLogitsWarper(w["topk"]))
    if w.get("topp", 1.0) < 1.0:
        procs.append(TopPLogitsWarper(w["topp"]))
    ids = torch.tensor([hist if hist else [0]])
    if not hist:
        procs = [pr for pr in procs if not isinstance(pr, (RepetitionPenaltyLogitsProcessor, NoRepeatNGramLogitsProcessor))]
    return LogitsProcessorList(procs)(ids, torch.from_numpy(row.copy()).unsqueeze(0))[0].numpy()


def main():
    torch.manual_seed(0)
    model = ToyLM(ToyConfig()).eval()
    lines = ["toy %d %d %s %d %s" % (V, SEED, fmt(BOOST), len(BOOST_IDS), " ".join(map(str, BOOST_IDS)))]
    with torch.no_grad():
        for name, p in HF_CASES + LORA_CASES:
            algo = "lora" if name.startswith("lora") else "hf"
            hyps = run_lora(p) if algo == "lora" else run_hf(model, p)
            assert len(hyps) == p["nret"], name
            lines.append(case_line(name, algo, p))
            for score, finished, gen in hyps:
                lines.append("hyp %s %d %d %s" % (fmt(score), finished, len(gen), " ".join(map(str, gen))))
                print(name, fmt(score), finished, gen)
        for name, row, w in warp_cases():
            out = run_warp(row, w)
            hist = w.get("hist", [])
            lines.append("warp %s temp %.9g topk %d topp %.9g rep %.9g ngram %d hist %d %s" % (
                name, w.get("temp", 1.0), w.get("topk", 0), w.get("topp", 1.0), w.get("rep", 1.0),
                w.get("ngram", 0), len(hist), " ".join(map(str, hist))))
            lines.append("in " + " ".join(fmt(x) for x in row))
            lines.append("out " + " ".join(fmt(x) for x in out))
            print(name, int(np.isfinite(out).sum()), "kept")
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
