#!/usr/bin/env python3
"""Reference ids for lorac's generic tokenizer (tests/test_tok.c, tests/test_tok_smollm2.c).

Run (from the repository root):
    .venv/bin/python tools/tok_ref.py              # tiny fixtures (needs tokenizers, sentencepiece, gguf, transformers)
    .venv/bin/python tools/tok_ref.py --smollm2 ~/.cache/lorac/SmolLM2-135M-Instruct.Q4_1.gguf

Writes tests/fixtures/tok/:
    corpus.txt                      the small training text (made here, deterministic)
    bl_{gpt2,smollm,llama3,qwen2}/tokenizer.json
                                    byte-level BPEs trained by HF `tokenizers` (vocab 400) with the
                                    pre-tokenizer each model family uses: ByteLevel (GPT-2),
                                    Digits(individual)+ByteLevel (SmolLM2/StarCoder), Llama 3's and
                                    Qwen2's Split regex + ByteLevel(use_regex=False); added tokens
                                    <|endoftext|>, <|im_start|>, <|im_end|> (special) and <tool> (not);
                                    bl_smollm/tokenizer_config.json as SmolLM2-Instruct's (bos, eos,
                                    pad, add_bos_token, chat_template)
    bl_*.gguf                       the same vocabularies as GGUF tokenizer.ggml.* metadata
                                    (model gpt2, pre gpt2/smollm/llama-bpe/qwen2), written with `gguf`;
                                    bl_smollm.gguf also has SmolLM2's chat template
    spm.model                       a sentencepiece BPE (vocab 520, byte_fallback, identity
                                    normalization, add_dummy_prefix) as Llama 2 / TinyLlama use
    spm.gguf                        its pieces, scores and types as tokenizer.ggml.model = "llama"
    spm_legacy/tokenizer.json       transformers' LlamaTokenizerFast conversion (legacy=True:
                                    normalizer Prepend+Replace), with <|im_start|>/<|im_end|> added
    spm_meta/tokenizer.json         the same rewritten as newer conversions write it (no normalizer;
                                    Metaspace pre-tokenizer and decoder, prepend_scheme "first")
    cases.txt                       FIXTURE<TAB>MODE<TAB>TEXT-HEX<TAB>IDS, one per line: MODE s =
                                    special tokens parsed (HF's default), p = plain text (HF
                                    encode_special_tokens=True); ids space-separated, "-" for none.
                                    References: HF `tokenizers` for tokenizer.json and for the
                                    byte-level GGUFs (same vocab and merges); `sentencepiece` for
                                    spm.gguf (per stretch between special tokens, as llama.cpp does).
With --smollm2: smollm2_ids.txt in the same format for the real model, its reference being an HF
tokenizer built from the GGUF's own tokens/merges with SmolLM2's tokenizer.json pipeline
(Digits(individual_digits) + ByteLevel, ByteLevel decoder, the 17 CONTROL tokens as special added
tokens), plus a line "chat<TAB>s<TAB>HEX<TAB>IDS" for the ChatML prompt lorac formats.
"""
import argparse
import os
import sys

import numpy as np
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers, AddedToken

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "tok")

LLAMA3_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
             r"\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_RE = LLAMA3_RE.replace(r"\p{N}{1,3}", r"\p{N}")
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
          "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + "
          "message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
          "{{ '<|im_start|>assistant\n' }}{% endif %}")

CORPUS = """The quick brown fox jumps over the lazy dog. It's 2024 and we're testing tokenizers!
Café, naïve, résumé, Zürich and São Paulo: accents everywhere. I'd say they'll work; you've seen it.
Numbers: 12345, 3.14159, 1,000,000 and 42. Prices: $9.99 or €20.
Whitespace   runs,\ttabs\tand
newlines\r\nand CRLF.   Trailing spaces   
Emoji: 😀 🚀 👍🏽 and CJK: 中文字符测试, 日本語のテキスト. Ελληνικά και русский текст.
<html><body class="x">code = f(x) + g[y] * 2;</body></html> // comment
DON'T SHOUT, IT'S FINE. We'RE OK. hello world hello world hello world
"""

TEXTS = [
    "Hello world", "hello world", " Hello", "  two leading", "trailing  ", "   ", "", "a", "\n", "\n\n\n",
    "The quick brown fox jumps over the lazy dog.", "It's 2024 and we're testing tokenizers!",
    "Café naïve résumé Zürich São Paulo", "Numbers: 12345, 3.14159, 1,000,000 and 42.", "$9.99 or €20",
    "Whitespace   runs,\ttabs\tand\nnewlines\r\nCRLF  \n  x", "Emoji: 😀 🚀 👍🏽!", "中文字符测试 日本語",
    "Ελληνικά και русский", "DON'T SHOUT, IT'S FINE. We'RE OK. I'Ll", "x'sy 'll 're 'Ve",
    "<|im_start|>user\nHi there!<|im_end|>\n<|im_start|>assistant\n", "a<|endoftext|>b", "<|endoftext|>",
    "use <tool> here<tool>", "<|im_end|><|im_end|>", "<|im_start", "tab\t\tthen   spaces\t \n x",
    "(parenthesized) [bracketed] {braced}", "--- *** !!! ???", "123456789", "x1y22z333", " 1 22 333 4444",
    "٣٤٥ ½ ²", "zero\u200bwidth\u00a0nbsp", "\r\n\r\n  \r\n", "ending with newline\n", "Ünïcödé ÀÉÎÕÜ",
    "<html><body>code = f(x) + g[y] * 2;</body></html>", "unknownchars: ☃ ♞ ⌘", "🙂🙃🙂🙃", "ctl\x04\x06chars\x7f",
]


def hexs(s):
    return s.encode("utf-8").hex()


def ids_str(ids):
    return " ".join(map(str, ids)) if ids else "-"


def train_byte_level(kind):
    tok = Tokenizer(models.BPE())
    bl = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=kind in ("gpt2", "smollm"))
    if kind == "gpt2":
        tok.pre_tokenizer = bl
    elif kind == "smollm":
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), bl])
    else:
        split = pre_tokenizers.Split(Regex(LLAMA3_RE if kind == "llama3" else QWEN2_RE), behavior="isolated", invert=False)
        tok.pre_tokenizer = pre_tokenizers.Sequence([split, bl])
    tok.decoder = decoders.ByteLevel()
    tr = trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                             show_progress=False)
    tok.train_from_iterator([CORPUS] * 3, trainer=tr)
    tok.add_tokens([AddedToken("<tool>", special=False, normalized=False)])
    if kind == "llama3":  # Llama 3's tokenizer.json sets ignore_merges
        import json
        j = json.loads(tok.to_str())
        j["model"]["ignore_merges"] = True
        tok = Tokenizer.from_str(json.dumps(j))
    return tok


def write_bl_gguf(tok, path, pre, chat):
    import json
    import gguf
    j = json.loads(tok.to_str())
    vocab = dict(j["model"]["vocab"])
    types = {}
    for a in j["added_tokens"]:
        vocab[a["content"]] = a["id"]
        types[a["id"]] = gguf.TokenType.CONTROL if a["special"] else gguf.TokenType.USER_DEFINED
    n = max(vocab.values()) + 1
    toks = [None] * n
    for k, v in vocab.items():
        toks[v] = k
    w = gguf.GGUFWriter(path, "llama")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(toks)
    w.add_token_types([int(types.get(i, gguf.TokenType.NORMAL)) for i in range(n)])
    merges = [m if isinstance(m, str) else " ".join(m) for m in j["model"]["merges"]]
    w.add_token_merges(merges)
    w.add_bos_token_id(vocab["<|im_start|>"])
    w.add_eos_token_id(vocab["<|endoftext|>"])
    w.add_add_bos_token(False)
    if chat:
        w.add_chat_template(CHATML)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def hf_cases(name, tok, texts, f):
    for t in texts:
        tok.encode_special_tokens = False
        f.write(f"{name}\ts\t{hexs(t)}\t{ids_str(tok.encode(t, add_special_tokens=False).ids)}\n")
        tok.encode_special_tokens = True
        f.write(f"{name}\tp\t{hexs(t)}\t{ids_str(tok.encode(t, add_special_tokens=False).ids)}\n")
    tok.encode_special_tokens = False


def train_spm():
    import sentencepiece as spm
    prefix = os.path.join(OUT, "spm")
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS.splitlines() * 3), model_prefix=prefix, model_type="bpe", vocab_size=520,
        byte_fallback=True, normalization_rule_name="identity", remove_extra_whitespaces=False, add_dummy_prefix=True,
        split_digits=True, character_coverage=0.98, bos_id=1, eos_id=2, unk_id=0, pad_id=-1, num_threads=1,
        user_defined_symbols=[], minloglevel=2)
    os.remove(prefix + ".vocab")
    return spm.SentencePieceProcessor(model_file=prefix + ".model")


def write_spm_gguf(sp, path):
    import gguf
    w = gguf.GGUFWriter(path, "llama")
    w.add_tokenizer_model("llama")
    toks, scores, types = [], [], []
    for i in range(sp.get_piece_size()):
        toks.append(sp.id_to_piece(i))
        scores.append(sp.get_score(i))
        t = gguf.TokenType.NORMAL
        if sp.is_unknown(i):
            t = gguf.TokenType.UNKNOWN
        elif sp.is_control(i):
            t = gguf.TokenType.CONTROL
        elif sp.is_byte(i):
            t = gguf.TokenType.BYTE
        elif sp.is_unused(i):
            t = gguf.TokenType.UNUSED
        types.append(int(t))
    w.add_token_list(toks)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_space_prefix(True)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def spm_ref(sp, text, specials):
    """llama.cpp's SPM session: split at special tokens (longest first), sentencepiece each stretch."""
    out, i, start = [], 0, 0
    while i <= len(text):
        hit = None
        for s in sorted(specials, key=len, reverse=True):
            if text.startswith(s, i):
                hit = s
                break
        if hit is None and i < len(text):
            i += 1
            continue
        if start < i:
            out += sp.encode(text[start:i])
        if hit is None:
            break
        out.append(specials[hit])
        i += len(hit)
        start = i
    return out


def tiny(args):
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "corpus.txt"), "w") as f:
        f.write(CORPUS)
    with open(os.path.join(OUT, "cases.txt"), "w") as f:
        for kind, pre in (("gpt2", "gpt2"), ("smollm", "smollm"), ("llama3", "llama-bpe"), ("qwen2", "qwen2")):
            tok = train_byte_level(kind)
            d = os.path.join(OUT, "bl_" + kind)
            os.makedirs(d, exist_ok=True)
            tok.save(os.path.join(d, "tokenizer.json"), pretty=False)
            if kind == "smollm":  # SmolLM2-Instruct's tokenizer_config.json keys
                import json
                with open(os.path.join(d, "tokenizer_config.json"), "w") as cf:
                    json.dump({"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "pad_token": "<|im_end|>",
                               "add_bos_token": False, "chat_template": CHATML}, cf, indent=1)
            write_bl_gguf(tok, os.path.join(OUT, f"bl_{kind}.gguf"), pre, kind == "smollm")
            hf_cases("bl_" + kind, tok, TEXTS, f)
        sp = train_spm()
        write_spm_gguf(sp, os.path.join(OUT, "spm.gguf"))
        ctl = {sp.id_to_piece(i): i for i in range(sp.get_piece_size()) if sp.is_control(i) or sp.is_unknown(i)}
        for t in TEXTS:  # sentencepiece knows no special tokens in text: "p" is plain, "s" splits at them
            f.write(f"spm.gguf\tp\t{hexs(t)}\t{ids_str(sp.encode(t))}\n")
            f.write(f"spm.gguf\ts\t{hexs(t)}\t{ids_str(spm_ref(sp, t, ctl))}\n")
        from transformers import LlamaTokenizerFast
        for legacy in (True, False):
            hf = LlamaTokenizerFast(vocab_file=os.path.join(OUT, "spm.model"), legacy=legacy, from_slow=True)
            hf.add_tokens([AddedToken("<|im_start|>", special=True, normalized=False),
                           AddedToken("<|im_end|>", special=True, normalized=False)], special_tokens=True)
            name = "spm_legacy" if legacy else "spm_meta"
            d = os.path.join(OUT, name)
            os.makedirs(d, exist_ok=True)
            tok = hf._tokenizer
            if not legacy:  # what newer conversions write: no normalizer, a Metaspace pre-tokenizer
                import json
                j = json.loads(tok.to_str())
                j["normalizer"] = None
                j["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False}
                j["decoder"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False}
                tok = Tokenizer.from_str(json.dumps(j))
            tok.save(os.path.join(d, "tokenizer.json"), pretty=False)
            tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
            hf_cases(name, tok, TEXTS, f)
            disagree = sum(tok.encode(t, add_special_tokens=False).ids != sp.encode(t) for t in TEXTS if "<" not in t)
            print(f"{name}: HF ids differ from sentencepiece on {disagree} special-free texts")
    print("wrote", OUT)


def smollm2(path):
    import gguf
    r = gguf.GGUFReader(path)

    def strs(key):
        f = r.fields[key]
        return [bytes(f.parts[i]).decode("utf-8") for i in f.data]

    toks, merges = strs("tokenizer.ggml.tokens"), strs("tokenizer.ggml.merges")
    tt = r.fields["tokenizer.ggml.token_type"]
    types = [int(tt.parts[i][0]) for i in tt.data]
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(toks)}, merges=[tuple(m.split(" ", 1)) for m in merges]))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t, ty in zip(toks, types) if ty == 3])
    chat = ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
            "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n")
    texts = TEXTS + [CORPUS, open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()[:4000]]
    with open(os.path.join(OUT, "smollm2_ids.txt"), "w") as f:
        hf_cases("smollm2", tok, texts, f)
        f.write(f"chat\ts\t{hexs(chat)}\t{ids_str(tok.encode(chat, add_special_tokens=False).ids)}\n")
    print("wrote", os.path.join(OUT, "smollm2_ids.txt"), "vocab", len(toks), "merges", len(merges))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--smollm2", help="write smollm2_ids.txt from this GGUF")
    a = ap.parse_args()
    if a.smollm2:
        smollm2(a.smollm2)
    else:
        tiny(a)


if __name__ == "__main__":
    sys.exit(main())
