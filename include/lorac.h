/* lorac.h — LoRA (Low-Rank Adaptation) for transformer language models, in C.
 *
 * This is the public API; the lorac CLI uses nothing else. It is a set of module headers:
 *
 *   lorac/base.h         status codes and messages, threads, RNG, mapped files, atomic outputs
 *   lorac/ops.h          fp32 forward/backward ops (matmul, norms, activations, attention, loss)
 *   lorac/metrics.h      E2E NLG metrics (BLEU, NIST, METEOR exact+stem, ROUGE-L, CIDEr) as the official scorer;
 *                        GLUE tasks and their metrics
 *   lorac/quant.h        ggml tensor types and block formats: (de)quantize rows; qmat matmuls over quantized weights
 *   lorac/gguf.h         GGUF files: validated mapped reader, typed metadata, writer
 *   lorac/generate.h     decoding: greedy, sampling, beam search (HF and LoRA-paper E2E) over gen_model
 *   lorac/json.h         JSON reader (DOM, line:col errors) and streaming writer
 *   lorac/safetensors.h  safetensors files: validated mapped reader, F16/BF16 to f32, atomic writer
 *   lorac/train.h        training: AdamW, LR schedule, clipping, data/batches, resume state, log+SVG
 *   lorac/conv.h         1-D/2-D convolution forward/backward (stride, padding, dilation, groups)
 *   lorac/lora.h         LoRA layers (loralib's Linear, MergedLinear, Embedding, Conv), merge, adapter state
 *   lorac/tokenizer.h    tokenizers (tok_*): GPT-2/SmolLM2/Llama 3/Qwen2 byte-level BPE and SentencePiece BPE
 *                        from GGUF, tokenizer.json or vocab.json+merges.txt; ChatML; GPT-2 BPE (bpe_*)
 *   lorac/peft.h         PEFT adapter directories: config, adapters in memory, combine (cat/svd/linear), weighted sums
 *   lorac/analyze.h      the LoRA paper's Section 7 on an adapter: spectra of ΔW, subspace similarity φ, ΔW vs W
 *   lorac/model.h        one transformer for every family (GPT-2, Llama 2/3, SmolLM2, TinyLlama, Mistral, Qwen2,
 *                        BERT, RoBERTa) from HF dirs or GGUF: LoRA, forward/backward, KV-cache sessions,
 *                        adapter sets and mixed batches, PEFT and GGUF adapters, merging
 *   lorac/wordpiece.h    BERT's WordPiece tokenizer (BasicTokenizer normalisation, pairs, truncation)
 *   lorac/glue.h         GLUE data: TSV readers and sentence(-pair) encoding
 *   lorac/finetune.h     the one trainer and evaluation for every family and task
 *   lorac/dist.h         the processes of a data-parallel run (MPI when built with it, else one)
 *
 * Build: link build/liblorac.a with LAPACKE, OpenBLAS (cblas, and LAPACK under LAPACKE), OpenMP and libm:
 *   cc -std=c11 app.c -Iinclude build/liblorac.a -llapacke -lopenblas -fopenmp -lm
 * (and MPI's libraries, e.g. with mpicc, when the build found MPI: CMake's "MPI:" line says)
 *
 * Errors: every function that can fail returns LORAC_OK (0) or a lorac_status and, given a
 * lorac_err, a one-line message naming the file and the problem. Nothing exits or prints.
 * Threads: lorac_set_threads(n) governs OpenMP loops and OpenBLAS; results do not depend on n.
 * Determinism: with a seed and a thread count fixed, everything is bit-reproducible.
 */
#ifndef LORAC_H
#define LORAC_H

#include "lorac/base.h"
#include "lorac/ops.h"
#include "lorac/metrics.h"
#include "lorac/json.h"
#include "lorac/safetensors.h"
#include "lorac/quant.h"
#include "lorac/gguf.h"
#include "lorac/generate.h"
#include "lorac/train.h"
#include "lorac/conv.h"
#include "lorac/lora.h"
#include "lorac/tokenizer.h"
#include "lorac/peft.h"
#include "lorac/model.h"
#include "lorac/analyze.h"
#include "lorac/wordpiece.h"
#include "lorac/glue.h"
#include "lorac/finetune.h"
#include "lorac/dist.h"
#include "lorac/serve.h"

#endif
