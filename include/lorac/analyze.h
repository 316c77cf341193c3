/* lorac/analyze.h — what a LoRA adapter learned: Section 7 of the LoRA paper (Hu et al. 2021,
 * "LoRA: Low-Rank Adaptation of Large Language Models") on any PEFT adapter, per adapted module.
 * docs/analysis.md explains each number and shows a run.
 *
 *   Spectrum. ΔW = s·B·A (out, in), B (out, r), A (r, in), s the module's PEFT scaling. Its
 *     singular values σ_1 >= ... >= σ_k (k = min(r, out, in)) come from QR factors of B and Aᵀ and
 *     an SVD of the small core (LAPACK), never from the (out, in) matrix. Effective rank (Roy &
 *     Vetterli 2007): exp(H(p)) with p_i = σ_i / Σ_j σ_j (the spectrum normalised to sum 1, not
 *     σ² to sum 1), between 1 (one direction) and k (a flat spectrum); 0 for ΔW = 0. Energy of the
 *     top t: Σ_{i<=t} σ_i² / Σ_i σ_i² (the share of ||ΔW||_F² that the best rank-t approximation keeps).
 *
 *   Subspace similarity (Section 7.2, Eq. 4), between two adapters of the same base:
 *       φ(A1, A2, i, j) = ||U1_iᵀ·U2_j||_F² / min(i, j)   in [0, 1]
 *     with U_i the top-i right-singular vectors of A (r, in) (vectors of R^in), i <= r1, j <= r2;
 *     phi_b uses the left-singular vectors of B instead (the paper's footnote 7). phi_random is φ
 *     of two Gaussian matrices of A1's and A2's shapes (Figure 4's baseline; its expectation is
 *     max(i, j) / in). Appendix G's normalised subspace similarity, 1 − d²/p with d the projection
 *     metric distance, is this same quantity (see docs/analysis.md).
 *
 *   ΔW against W (Section 7.3, Table 7), where the caller supplies W:
 *       proj_delta  = ||Uᵀ·W·Vᵀ||_F with U (out, r), V (r, in) the top-r singular vectors of ΔW
 *       proj_weight = the same with the top-r singular vectors of W  (= sqrt(Σ_{i<=r} σ_i(W)²))
 *       proj_random = the same with U, V orthonormal bases of Gaussian matrices (distributed as a
 *                     random matrix's singular vectors), seeded
 *       amplification = ||ΔW||_F / proj_delta.
 *
 * lorac's q/k/v split of GPT-2's c_attn (safetensors metadata "lorac.c_attn_split", what `lorac
 * train --targets q,v` writes: one PEFT module of rank k·r whose B is block diagonal) is analysed
 * per projection: one entry per slice ('q', 'k', 'v') with its own A, B and W columns.
 *
 * Memory: per module, one double copy of W (out·in·8 bytes) while that module is analysed, plus
 * O((out + in)·r) for the factors. Threads: OpenBLAS's. Determinism: fixed for a seed (singular
 * vector signs are normalised: the largest entry of each right-singular vector is positive).
 */
#ifndef LORAC_ANALYZE_H
#define LORAC_ANALYZE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "lorac/base.h"
#include "lorac/peft.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How a base matrix is stored: (out, in) as nn.Linear, or (in, out) as GPT-2's Conv1D
 * (fan_in_fan_out) and as embeddings ((vocab, dim): PEFT's embedding delta is (B·A)ᵀ). */
typedef enum analyze_layout { ANALYZE_OUT_IN = 0, ANALYZE_IN_OUT = 1 } analyze_layout;

/* A module's base matrix as the caller has it. */
typedef struct analyze_weight {
    const float *data;     /* row-major, borrowed; NULL: not available (why says why) */
    int64_t rows, cols;    /* as stored: (out, in) for ANALYZE_OUT_IN, (in, out) for ANALYZE_IN_OUT */
    analyze_layout layout;
    char why[128];         /* when data is NULL, e.g. "quantized base" */
} analyze_weight;

/* Supplies W for module (a PEFT module name, e.g. "transformer.h.0.attn.c_attn"; embedding: a
 * lora_embedding_A/B module). Return LORAC_OK with w->data set, or with w->data NULL and w->why
 * filled when there is no f32 matrix for it; any other status stops the analysis. w arrives zeroed. */
typedef int (*analyze_weight_fn)(void *ctx, const char *module, int embedding, analyze_weight *w, lorac_err *err);

typedef struct analyze_opts {
    const char *targets; /* comma list; a module is kept when an item is its name or a dotted suffix
                            of it ("c_attn", "q_proj", "attn.c_proj"; split slices also match
                            "<module>.q", so "q" or "c_attn.v"); NULL or "": all */
    const char *layers;  /* "0,2,5-7": modules whose first ".N." index is listed; NULL or "": all */
    uint64_t seed;       /* for the random baselines (each module's draws: from seed and its name) */
} analyze_opts;

/* One adapter's ΔW at one module. */
typedef struct analyze_delta {
    int rank;              /* r: the rows of A (of the slice) */
    double scaling;        /* s */
    int n_sv;              /* k = min(r, out, in) */
    double *sv;            /* k singular values of ΔW, descending */
    double *energy;        /* k: energy[t-1] = Σ_{i<=t} σ_i² / Σ σ² (all 0 when ΔW = 0) */
    double effective_rank; /* exp(entropy of σ / Σσ) */
    double norm_delta;     /* ||ΔW||_F */
    /* Section 7.3; NaN when the module's W is not available */
    double proj_delta, proj_weight, proj_random, amplification;
} analyze_delta;

typedef struct analyze_module {
    char name[224];        /* PEFT module name, "transformer.h.0.attn.c_attn" */
    char slice;            /* 'q', 'k' or 'v' for one projection of a q/k/v split, else 0 */
    int layer;             /* the first ".N." index in name, -1 when none */
    int embedding;
    int64_t out, in;       /* ΔW's shape (of the slice) */
    int has_weight;        /* W was supplied; else weight_why says why not */
    char weight_why[128];
    double norm_weight;    /* ||W||_F (NaN without W) */
    analyze_delta d[2];    /* d[1] only with a second adapter */
    /* with a second adapter: φ at [(i-1)·phi_cols + (j-1)], i <= phi_rows, j <= phi_cols */
    int phi_rows, phi_cols;
    double *phi, *phi_b, *phi_random;
} analyze_module;

typedef struct analyze_report {
    analyze_module *mods;
    size_t n;
    int two;               /* a second adapter was compared */
    size_t ignored[2];     /* tensors of each adapter that are not LoRA A/B (trained biases,
                              modules_to_save copies): not analysed */
} analyze_report;

/* Analyses every module of a1 that the filters keep, and with a2 (may be NULL) the same modules of
 * a2 (each must be there, with the same shape). weight (may be NULL: no Section 7.3 numbers) is
 * called once per module. Errors: a filter item that matches no module, a malformed --layers list,
 * a module missing from a2 or shaped differently, W of another shape, LAPACK failures. */
int analyze_run(const peft_adapter *a1, const peft_adapter *a2, const analyze_opts *o, analyze_weight_fn weight,
                void *ctx, analyze_report **out, lorac_err *err);
void analyze_report_free(analyze_report *r);

/* The pieces, for tests and other callers. */
/* Singular values (k = min(r, out, in), descending) and, when U / Vt are non-NULL, the vectors
 * (U (out, k), Vt (k, in)) of s·B·A, B (out, r), A (r, in) row-major f32. */
int analyze_delta_svd(const float *B, const float *A, int64_t out, int r, int64_t in, double s, double *sv, double *U,
                      double *Vt, lorac_err *err);
/* exp(H(σ / Σσ)); 0 when every σ is 0. */
double analyze_effective_rank(const double *sv, int n);
/* φ(X1, X2, i, j) over the row spaces of X1 (k1, n) and X2 (k2, n): right-singular vectors, i <= k1,
 * j <= k2 (k1, k2 <= n), into phi (k1, k2) row-major. For A pass A; for B pass Bᵀ. */
int analyze_phi(const float *X1, int k1, const float *X2, int k2, int64_t n, double *phi, lorac_err *err);
/* ||Uᵀ·W·Vᵀ||_F for U (out, r) and Vt (r, in) row-major, W the (out, in) block rows row_off ..
 * row_off+out-1 of the matrix w holds (its out dimension may be larger: a q/k/v slice). */
int analyze_projection(const analyze_weight *w, int64_t row_off, int64_t out, int64_t in, const double *U,
                       const double *Vt, int r, double *proj, lorac_err *err);

/* The report as one JSON object (docs/analysis.md lists the keys), followed by a newline. */
int analyze_write_json(const analyze_report *r, FILE *f, lorac_err *err);
/* SVG figures into the existing directory dir: <module>.spectrum.svg for every module and, with a
 * second adapter, <module>.phi.svg (φ and its random baseline as heatmaps, as the paper's Figures 3
 * and 4). Names are the module name with its slice (".q"), other characters than [A-Za-z0-9._-]
 * as '_'. labels[0..1] name the adapters in captions (may be NULL). */
int analyze_write_svgs(const analyze_report *r, const char *dir, const char *const *labels, lorac_err *err);

#ifdef __cplusplus
}
#endif
#endif
