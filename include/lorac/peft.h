/* lorac/peft.h — Hugging Face PEFT's LoRA adapter directory: adapter_config.json (+ the tensors in
 * adapter_model.safetensors, named "base_model.model.<module>.lora_A.weight" (r, in) and
 * ".lora_B.weight" (out, r); embeddings use "lora_embedding_A" (r, vocab) / "lora_embedding_B"
 * (dim, r) without ".weight").
 *
 * Only "peft_type" is required. Keys this version does not know are reported as warnings (newer
 * PEFT versions add keys); a key whose value would change the math and that lorac does not
 * implement (use_dora: true, target_parameters, ...) is an error, never silently ignored.
 */
#ifndef LORAC_PEFT_H
#define LORAC_PEFT_H

#include <stddef.h>

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

/* Effective rank and alpha for a module name (rank_pattern / alpha_pattern applied). */
int peft_rank_for(const peft_config *c, const char *module);
double peft_alpha_for(const peft_config *c, const char *module);
/* The scaling PEFT applies: alpha/r, or alpha/sqrt(r) with use_rslora. */
double peft_scaling_for(const peft_config *c, const char *module);
/* 1 if PEFT would put LoRA on this module (target list: exact name or dotted suffix; layer filter
 * from layers_to_transform using the ".<N>." index in the name). */
int peft_targets_module(const peft_config *c, const char *module);

#ifdef __cplusplus
}
#endif
#endif
