/* lorac/peft.h — Hugging Face PEFT's LoRA adapter directory: adapter_config.json (+ the tensors in
 * adapter_model.safetensors, named "base_model.model.<module>.lora_A.weight" (r, in) and
 * ".lora_B.weight" (out, r); embeddings use "lora_embedding_A" (r, vocab) / "lora_embedding_B"
 * (dim, r) without ".weight").
 *
 * Three levels: peft_config (adapter_config.json alone); peft_adapter (config + tensors in memory,
 * independent of any model: read, write, combine as PEFT's add_weighted_adapter, and the weighted
 * sum behind --adapter DIR[:SCALE] lists); and the model families' attach functions
 * (model_peft_attach in lorac/model.h), which checks the tensors against
 * the model. docs/adapters.md describes what is supported and how it was checked against PEFT.
 *
 * Only "peft_type" is required. Keys this version does not know are reported as warnings (newer
 * PEFT versions add keys); a key whose value would change the math and that lorac does not
 * implement (use_dora: true, target_parameters, ...) is an error, never silently ignored.
 */
#ifndef LORAC_PEFT_H
#define LORAC_PEFT_H

#include <stddef.h>
#include <stdint.h>

#include "lorac/base.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PEFT_MAX_TARGETS 64
#define PEFT_MAX_PATTERNS 256
#define PEFT_MAX_LAYERS 256
#define PEFT_MAX_WARNINGS 16

typedef enum peft_bias { PEFT_BIAS_NONE = 0, PEFT_BIAS_ALL, PEFT_BIAS_LORA_ONLY } peft_bias;

/* A per-module override: PEFT matches the key against the module name as a regex suffix
 * ("(.*\.)?key$"); lorac implements plain names and dotted suffixes. */
typedef struct peft_pattern {
    char key[128];
    double value;
} peft_pattern;

typedef struct peft_config {
    int r;
    double lora_alpha;
    double lora_dropout;
    int fan_in_fan_out;
    peft_bias bias;
    int use_rslora;
    char target_modules[PEFT_MAX_TARGETS][64]; /* a list (n_targets > 0) ... */
    int n_targets;
    char target_regex[512];                   /* ... or a regex string (full match), if non-empty */
    peft_pattern rank_pattern[PEFT_MAX_PATTERNS];
    int n_rank_pattern;
    peft_pattern alpha_pattern[PEFT_MAX_PATTERNS];
    int n_alpha_pattern;
    int layers_to_transform[PEFT_MAX_LAYERS]; /* empty = all layers */
    int n_layers_to_transform;
    char modules_to_save[PEFT_MAX_TARGETS][64];
    int n_modules_to_save;
    int init_lora_weights;                    /* informational when loading */
    int lora_bias;                            /* PEFT's lora_bias (a bias on lora_B) */
    char task_type[32];
    char base_model_name_or_path[512];
    char warnings[PEFT_MAX_WARNINGS][4200];    /* unknown keys, one message each */
    int n_warnings;
} peft_config;

/* Defaults as PEFT's LoraConfig: r 8, alpha 8, dropout 0, bias none. */
void peft_config_init(peft_config *c);
/* Reads DIR/adapter_config.json. Rejects a directory holding only adapter_model.bin with a message
 * that says how to convert it. */
int peft_config_load(const char *dir, peft_config *c, lorac_err *err);
/* Writes c as adapter_config.json at PATH (atomically). */
int peft_config_save(const peft_config *c, const char *path, lorac_err *err);

/* Gives one module its own rank and alpha: rank_pattern and alpha_pattern entries under its full
 * name (PEFT's suffix match then takes that module alone). Fails when the patterns are full. */
int peft_config_module_pattern(peft_config *c, const char *module, int r, double alpha, const char *path, lorac_err *err);
/* Effective rank and alpha for a module name (rank_pattern / alpha_pattern applied). */
int peft_rank_for(const peft_config *c, const char *module);
double peft_alpha_for(const peft_config *c, const char *module);
/* The scaling PEFT applies: alpha/r, or alpha/sqrt(r) with use_rslora. */
double peft_scaling_for(const peft_config *c, const char *module);
/* 1 if PEFT would put LoRA on this module (target list: exact name or dotted suffix; layer filter
 * from layers_to_transform using the ".<N>." index in the name). */
int peft_targets_module(const peft_config *c, const char *module);
/* PEFT's key match ("(.*\.)?key$"): module is key or ends with ".key". */
int peft_module_matches(const char *module, const char *key);
/* 1 if tensor ("bert.pooler.dense.weight") lies under a module key names: some dotted prefix of it
 * ("bert", "bert.pooler", "bert.pooler.dense") matches key, as modules_to_save wraps a whole module. */
int peft_module_under(const char *tensor, const char *key);

/* ---------------------------------------------------------------- an adapter in memory */

/* One tensor of an adapter, by its PEFT name (e.g.
 * "base_model.model.transformer.h.0.attn.c_attn.lora_A.weight"), always held as f32. */
typedef struct peft_tensor {
    char name[256];
    int ndim;         /* 1 or 2 */
    int64_t shape[2];
    float *data;      /* owned, shape[0]·shape[1] floats (shape[1] = 1 when ndim is 1) */
} peft_tensor;

#define PEFT_MAX_META 8

/* A PEFT adapter, independent of any model: its config and its named tensors (model families
 * attach it: model_peft_attach in lorac/model.h). */
typedef struct peft_adapter {
    peft_config cfg;
    peft_tensor *t;
    size_t n, cap;
    char meta_key[PEFT_MAX_META][64];    /* safetensors __metadata__ other than "format" */
    char meta_val[PEFT_MAX_META][256];   /* (lorac writes "lorac.c_attn_split" for a q,v split) */
    int n_meta;
    char source[4096];                   /* the directory it was read from ("" if built) */
} peft_adapter;

/* An empty adapter with config cfg (copied; NULL: peft_config_init's defaults). */
int peft_adapter_new(const peft_config *cfg, peft_adapter **out, lorac_err *err);
/* Reads DIR (adapter_config.json + adapter_model.safetensors; F32, F16 or BF16 tensors) into a new
 * adapter. Checks: the config (peft_config_load), every tensor is 1-D or 2-D, finite, named once,
 * and is a LoRA tensor (lora_A/lora_B[.weight], lora_embedding_A/B) of a module the config
 * targets, with lora_A and lora_B paired and of the rank the config gives that module
 * (rank_pattern applied). Config warnings go to warn, one per line (when warn is non-NULL).
 * Nothing is returned unless every check passes. */
int peft_adapter_read(const char *dir, peft_adapter **out, char *warn, size_t warn_size, lorac_err *err);
/* Writes DIR atomically (built under a temporary name, renamed into place, replacing DIR) as F32. */
int peft_adapter_write(const peft_adapter *a, const char *dir, lorac_err *err);
void peft_adapter_free(peft_adapter *a);
/* The tensor called name, or NULL. */
const peft_tensor *peft_adapter_find(const peft_adapter *a, const char *name);
/* Appends a copy of data (d0, d1) (d1 = 0: 1-D) as name; a duplicate name is an error. */
int peft_adapter_add(peft_adapter *a, const char *name, int64_t d0, int64_t d1, const float *data,
                     lorac_err *err);
/* The metadata value for key, or NULL. */
const char *peft_adapter_meta(const peft_adapter *a, const char *key);

/* The modules an adapter holds LoRA for, parsed from its tensor names: module is the PEFT module
 * path ("transformer.h.0.attn.c_attn", without "base_model.model."); A (r, in) and B (out, r) are
 * its tensors (embeddings: lora_embedding_A (r, V), lora_embedding_B (D, r)); scaling is PEFT's
 * (alpha/r or alpha/sqrt(r) with rank_pattern/alpha_pattern applied). */
typedef struct peft_module {
    char module[224];
    int embedding;
    const peft_tensor *A, *B;
    double scaling;
} peft_module;
/* Lists the modules into *mods (malloc'd, *n entries, in tensor order). */
int peft_adapter_modules(const peft_adapter *a, peft_module **mods, size_t *n, lorac_err *err);
/* Fails, naming the tensor, when a holds anything but LoRA A/B tensors (a trained bias or a
 * modules_to_save copy): adapter sets swap LoRA layers only, so such tensors would stay behind. */
int peft_adapter_check_lora_only(const peft_adapter *a, lorac_err *err);

/* ---------------------------------------------------------------- several adapters */

typedef enum peft_combine_mode {
    PEFT_COMBINE_CAT = 0, /* exact: A = [w_i·s_i·A_i] stacked, B = [B_i] side by side; ranks add */
    PEFT_COMBINE_SVD,     /* Σ w_i·s_i·B_i·A_i exactly, truncated to svd_rank by an SVD */
    PEFT_COMBINE_LINEAR,  /* PEFT's rule: A = Σ √(w_i·s_i)·A_i, B = Σ √(w_i·s_i)·B_i (inexact) */
} peft_combine_mode;
/* "cat", "svd", "linear" -> mode; -1 otherwise. */
int peft_combine_mode_parse(const char *s);

/* PEFT's add_weighted_adapter: a new adapter whose modules are the union of the inputs' modules;
 * its scaling is 1 (lora_alpha = r, no rsLoRA) with per-module ranks in rank_pattern/alpha_pattern
 * where they differ from r. svd_rank <= 0 means the largest input rank (as PEFT). energy_kept (may
 * be NULL) receives, for svd, Σ kept σ² / Σ σ² over all modules (1 for cat and linear).
 * Differences from PEFT 0.10, on purpose: svd weights each delta by w_i·s_i once (PEFT 0.10
 * multiplies its already scaled delta by the scaling again); linear needs w_i·s_i >= 0 (√) and
 * equal ranks, as PEFT. Inputs must target the same model (equal shapes for shared modules). */
int peft_adapter_combine(peft_adapter *const *ads, const float *weights, int n, peft_combine_mode mode, int svd_rank,
                         peft_adapter **out, double *energy_kept, lorac_err *err);

/* What --adapter DIR[:SCALE] (repeated) means: reads each spec ("DIR" or "DIR:SCALE"; a suffix
 * after the last ':' that is not a number is an error naming it) and returns one adapter whose
 * delta is Σ SCALE_i·ΔW_i exactly (one spec with scale 1: that adapter as read; else cat). */
int peft_adapters_load_weighted(const char *const *specs, int n, peft_adapter **out, char *warn, size_t warn_size,
                                lorac_err *err);
/* The same with a reader for each path that knows more formats than PEFT directories (a model's
 * GGUF adapters: model_adapter_read); NULL reads with peft_adapter_read. */
typedef int (*peft_reader)(const void *ctx, const char *path, peft_adapter **out, char *warn, size_t warn_size,
                           lorac_err *err);
int peft_adapters_load_weighted_with(const char *const *specs, int n, peft_reader read, const void *ctx,
                                     peft_adapter **out, char *warn, size_t warn_size, lorac_err *err);
/* Splits one spec into dir (dir_size bytes) and scale (1 when absent). */
int peft_adapter_spec_parse(const char *spec, char *dir, size_t dir_size, float *scale, lorac_err *err);

#ifdef __cplusplus
}
#endif
#endif
