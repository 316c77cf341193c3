/* Decoding through the model-generic handle (lorac/lm.h): the KV-cache session of whichever family
 * the handle holds, seen as a gen_model, and the eos ids a chat model ends a turn with. Lives in
 * gen/ because it joins the models to the decoder. */
#include "lorac/generate.h"
#include "lorac/lm.h"

int lm_gen_model(lm *m, gen_model *gm, lorac_err *err) {
    int rc = LORAC_OK;
    if (m->arch == LM_GPT2) {
        if (!m->gs) rc = gpt2_session_new(&m->gpt2, &m->gs, err);
        if (!rc) gen_model_gpt2(gm, &m->gpt2, m->gs);
    } else {
        if (!m->ls) rc = llama_session_new(&m->llama, &m->ls, err);
        if (!rc) gen_model_llama(gm, &m->llama, m->ls);
    }
    return rc;
}

void lm_gen_eos(const lm *m, gen_config *gc) {
    gc->n_eos = 0;
    if (m->eos_id >= 0) gc->eos[gc->n_eos++] = m->eos_id;
    if (m->has_chat && m->im_end_id >= 0 && m->im_end_id != m->eos_id) gc->eos[gc->n_eos++] = m->im_end_id;
}
