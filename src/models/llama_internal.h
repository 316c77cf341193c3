/* llama_internal.h — what the Llama model's files share and the public header does not show. */
#ifndef LORAC_LLAMA_INTERNAL_H
#define LORAC_LLAMA_INTERNAL_H

#include "lorac/llama.h"

/* Attaches one LoRA Linear to (layer, site) over the borrowed base weight and bias. */
int llama_lora_attach(llama_model *m, int layer, int site, const lora_config *lc, lorac_rng *rng, lorac_err *err);
/* Call once after attaching with the attaching's status: registers the layers and freezes all
 * else; on failure drops every LoRA layer. Returns rc (or a registry error). */
int llama_lora_finish(llama_model *m, int rc, lorac_err *err);
/* The base model a set's adapters were attached to. */
const llama_model *llama_adapter_set_model(const llama_adapter_set *s);

#endif
