/* lorac/hf_config.h — keys of a Hugging Face config.json that mean the same in every family:
 * rotary parameters in the layouts transformers 4 ("rope_theta" + "rope_scaling") and 5
 * ("rope_parameters") write, per-layer attention types, token ids. Errors are one line naming
 * the file and key; a key that would change the arithmetic and is not implemented is refused. */
#ifndef LORAC_HF_CONFIG_H
#define LORAC_HF_CONFIG_H

#include "lorac/json.h"
#include "lorac/ops_rope.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The rotary parameters of root ("rope_parameters", else "rope_theta" + "rope_scaling"; theta
 * 10000 when none is given). An unknown rope_type, a partial rotary factor or any scaling key
 * lorac does not implement is an error naming it. */
int hf_config_rope(const json_value *root, const char *path, rope_params *p, lorac_err *err);
/* Writes p as transformers 4 reads it (rope_theta, rope_scaling). */
void hf_config_write_rope(json_writer *w, const rope_params *p);
/* Per-layer attention types ("layer_types", transformers >= 5): full or sliding attention (*sliding
 * says whether any layer slides); any other type is an error. */
int hf_config_layer_types(const json_value *root, const char *path, int *sliding, lorac_err *err);
/* A token id given as a number or a list (the first is taken); def when absent or null. The first
 * error goes to *rc / err, as json_field_int. */
int hf_config_token(const json_value *o, const char *key, int def, const char *path, int *rc, lorac_err *err);

#ifdef __cplusplus
}
#endif
#endif
