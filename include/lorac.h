/* lorac.h — LoRA (Low-Rank Adaptation) for transformer language models, in C.
 *
 * This is the public API; the lorac CLI uses nothing else. It is a set of module headers:
 *
 *   lorac/base.h         status codes and messages, threads, RNG, mapped files, atomic outputs
 *   lorac/ops.h          fp32 forward/backward ops (matmul, norms, activations, attention, loss)
 *   (further modules are listed below as they land)
 *
 * Build: link build/liblorac.a with OpenBLAS (cblas), OpenMP and libm:
 *   cc -std=c11 app.c -Iinclude build/liblorac.a -lopenblas -fopenmp -lm
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

#endif
