/* Sentence(-pair) encoding for GLUE: the special tokens, type ids and longest-first truncation of
 * Hugging Face's tokenizers, over a model's tokenizer (its family says which tokens). */
#include <stdlib.h>
#include <string.h>

#include "lorac/glue.h"

struct glue_encoder {
    const model *m;        /* its tokenizer */
    int32_t cls, sep, pad;
    int pair_seps;         /* separators between the sentences: 1 (BERT), 2 (RoBERTa) */
    int pair_type;         /* the second sentence's token type */
};

int glue_encoder_for_model(const model *m, glue_encoder **out, lorac_err *err) {
    const model_tokens *k = model_tok(m);
    *out = NULL;
    if (k->cls < 0 || k->sep < 0 || k->pad < 0)
        return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: the model's tokenizer has no sentence-pair tokens", model_path(m));
    glue_encoder *e = calloc(1, sizeof *e);
    if (!e) return lorac_fail(err, LORAC_ENOMEM, "out of memory");
    e->m = m, e->cls = k->cls, e->sep = k->sep, e->pad = k->pad, e->pair_seps = k->pair_seps, e->pair_type = k->pair_type_ids;
    *out = e;
    return LORAC_OK;
}

void glue_encoder_free(glue_encoder *e) {
    free(e);
}

int32_t glue_encoder_pad(const glue_encoder *e) { return e->pad; }

static int enc(const glue_encoder *e, const char *s, int32_t **ids, size_t *n, lorac_err *err) {
    return model_encode(e->m, s, strlen(s), 0, ids, n, err);
}

int glue_encode(const glue_encoder *e, const char *a, const char *b, int max_len, int32_t *ids, int32_t *types,
                int *len, lorac_err *err) {
    int32_t *ia = NULL, *ib = NULL;
    size_t na = 0, nb = 0;
    int rc = enc(e, a, &ia, &na, err);
    if (!rc && b) rc = enc(e, b, &ib, &nb, err);
    if (rc) {
        free(ia);
        free(ib);
        return rc;
    }
    int special = b ? 2 + e->pair_seps : 2;
    if (max_len < special + 1) {
        free(ia);
        free(ib);
        return lorac_fail(err, LORAC_EINVAL, "max_seq_len %d is too short for the special tokens", max_len);
    }
    /* longest_first as tokenizers does it: the shorter sequence (a on ties) keeps at most half the
     * room, the other takes the rest; both are cut at their end */
    size_t room = (size_t)(max_len - special);
    if (na + nb > room) {
        if (na > nb) {
            nb = nb < room / 2 ? nb : room / 2;
            na = na < room - nb ? na : room - nb;
        } else {
            na = na < room / 2 ? na : room / 2;
            nb = nb < room - na ? nb : room - na;
        }
    }
    int n = 0;
    ids[n] = e->cls; types[n++] = 0;
    for (size_t i = 0; i < na; i++) { ids[n] = ia[i]; types[n++] = 0; }
    ids[n] = e->sep; types[n++] = 0;
    if (b) {
        int tb = e->pair_type;
        for (int k = 1; k < e->pair_seps; k++) { ids[n] = e->sep; types[n++] = 0; }
        for (size_t i = 0; i < nb; i++) { ids[n] = ib[i]; types[n++] = tb; }
        ids[n] = e->sep; types[n++] = tb;
    }
    *len = n;
    free(ia);
    free(ib);
    return LORAC_OK;
}
