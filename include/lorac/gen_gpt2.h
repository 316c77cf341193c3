/* lorac/gen_gpt2.h — decoding GPT-2: the gen_model interface over a gpt2_session (KV cache). */
#ifndef LORAC_GEN_GPT2_H
#define LORAC_GEN_GPT2_H

#include "lorac/generate.h"
#include "lorac/gpt2.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Fills gm so that gen_generate decodes with model m through session s (one request at a time). */
void gen_model_gpt2(gen_model *gm, const gpt2_model *m, gpt2_session *s);

#ifdef __cplusplus
}
#endif
#endif
