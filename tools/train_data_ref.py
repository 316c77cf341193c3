#!/usr/bin/env python3
"""Reference token sequences for lorac's training data (tests/test_data.c), by the LoRA paper's code.

Run:   .venv/bin/python tools/train_data_ref.py
Needs: ../shared/data (E2E train.txt and the GPT-2 vocabulary encoder.json + vocab.bpe).
Writes tests/fixtures/train/e2e_ref.txt (~10 KB, text): for a few E2E training lines (and one made-up
line long enough to be cut at MAX_LEN tokens), the line itself, then the model input ids and the
targets (-100 where the paper's mask is 0) that microsoft/LoRA's examples/NLG pipeline produces:
  format_converting_e2e.py / gpt2_ft.py: line.strip().split('||') -> context, completion
  gpt2_encode.py --add_bos --add_eos:    context = enc(context) + [50256];
                                         completion = enc(' ' + completion) + [50256]
  data_utils.FT_Dataset.__getitem__:     input = (context + completion)[:max_seq_length]
                                         target[p] = input[p+1] where mask[p] = 1, with
                                         mask = [0]*(len(context)-1) + [1]*(input_len-len(context))
The tokenizer is Hugging Face's GPT2Tokenizer over the same files (the paper's encoder.py is
OpenAI's GPT-2 encoder, which it reproduces id for id).

Lines: "line <n> <maxlen> <text>", "ids <id> ...", "targets <t> ..." per example.
"""
import os

from transformers import GPT2Tokenizer

N_LINES, MAX_LEN_LONG = 6, 40


def build(tok, line, max_len):
    items = line.strip().split("||")
    context, completion = items[0], items[1]
    ctx = tok.encode(context) + [50256]
    comp = tok.encode(" " + completion) + [50256]
    full = ctx + comp
    inp = full[:max_len]
    input_len = len(inp)
    mask = [0.0] * (len(ctx) - 1) + [1.0] * (input_len - len(ctx))
    mask = (mask + [0.0] * input_len)[:input_len]
    targets = [full[p + 1] if mask[p] == 1.0 else -100 for p in range(input_len)]
    return inp, targets


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    data = os.path.join(here, "..", "..", "shared", "data")
    tok = GPT2Tokenizer(os.path.join(data, "gpt2-vocab", "encoder.json"),
                        os.path.join(data, "gpt2-vocab", "vocab.bpe"))
    with open(os.path.join(data, "e2e", "train.txt"), encoding="utf-8") as f:
        lines = [next(f) for _ in range(N_LINES)]
    cases = [(l, 512) for l in lines]
    cases.append(("name : The Long Name Inn | Type : restaurant | food : French | price : high | "
                  "area : city centre | near : Café Rouge||The Long Name Inn is an expensive French "
                  "restaurant in the city centre near Café Rouge . ", MAX_LEN_LONG))
    out = ["# written by tools/train_data_ref.py; do not edit"]
    for n, (line, max_len) in enumerate(cases):
        ids, targets = build(tok, line, max_len)
        out.append(f"line {n} {max_len} {line.rstrip(chr(10))}")
        out.append("ids " + " ".join(map(str, ids)))
        out.append("targets " + " ".join(map(str, targets)))
    path = os.path.join(here, "..", "tests", "fixtures", "train", "e2e_ref.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")
    print(f"wrote {os.path.normpath(path)}")


if __name__ == "__main__":
    main()
