/* gpt2_internal.h — shared by the GPT-2 files in src/models/ (not part of the public API). */
#ifndef LORAC_GPT2_INTERNAL_H
#define LORAC_GPT2_INTERNAL_H

#include "lorac/gpt2.h"

enum { SITE_ATTN = GPT2_SITE_C_ATTN, SITE_PROJ = GPT2_SITE_ATTN_PROJ, SITE_FC = GPT2_SITE_MLP_FC,
       SITE_FCPROJ = GPT2_SITE_MLP_PROJ, N_SITES = GPT2_N_SITES };

/* out (N,OC) = site(inp (N,C)) through the frozen Conv1D or its LoRA layer; act is that site's
 * LoRA record (allocated on first use for cap_N rows). */
int gpt2_site_forward(gpt2_model *m, lora_act *act, int cap_N, int l, int site, float *out, const float *inp, int N,
                      lorac_rng *rng, lorac_err *err);
/* 1 when the site's backward reads inp (a LoRA layer's A gradient); the frozen map's does not. */
int gpt2_site_reads_input(const gpt2_model *m, int l, int site);
/* dinp (N,C) += the input gradient (dinp may be NULL); the LoRA layer accumulates its own. */
int gpt2_site_backward(gpt2_model *m, lora_act *act, int l, int site, float *dinp, const float *dout,
                       const float *inp, int N, lorac_err *err);

#endif
