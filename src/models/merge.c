/* Merged outputs: W0 + s·B·A computed in f32 from the (dequantized) base, so an adapter trained on a
 * quantized base merges without a round of re-quantization error until the output type asks for
 * one; written as a Hugging Face directory (also how a fully fine-tuned model is saved) or as a GGUF
 * for llama.cpp (families with GGUF names). */
#include <stdlib.h>
#include <string.h>

#include "models/model_internal.h"

/* Tokenizer and generation files that travel with a model directory. */
static const char *const carried[] = {"vocab.json", "merges.txt", "encoder.json", "vocab.bpe", "vocab.txt", "tokenizer.json",
                                      "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"};

static int carry_files(const char *from, const char *to, lorac_err *err) {
    int rc = LORAC_OK;
    for (size_t i = 0; i < sizeof carried / sizeof carried[0] && !rc; i++) {
        char src[2200], dst[2200], *data = NULL;
        size_t n = 0;
        lorac_err ignore;
        snprintf(src, sizeof src, "%s/%s", from, carried[i]);
        snprintf(dst, sizeof dst, "%s/%s", to, carried[i]);
        if (!lorac_read_file(src, &data, &n, &ignore)) rc = lorac_write_file(dst, data, n, err); /* absent: not carried */
        free(data);
    }
    return rc;
}

int model_save_files(model *m, const char *dir, lorac_err *err) {
    if (m->rope_freqs)
        return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: the GGUF's rope_freqs factors cannot be written to config.json", dir);
    int rc = model_weights_save_files(m, dir, 1, err);
    return rc ? rc : model_gguf(m) ? model_save_tokenizer(m, dir, err) : carry_files(m->path, dir, err);
}

static int merged_hf(model *m, const char *dir, lorac_err *err) {
    lorac_outdir od;
    int rc = lorac_outdir_open(&od, dir, err);
    if (!rc) rc = model_save_files(m, od.tmp, err);
    if (!rc) return lorac_outdir_commit(&od, err);
    lorac_outdir_abort(&od);
    return rc;
}

/* ---------------------------------------------------------------- GGUF */

typedef struct merge_out {
    gguf_writer *w;
    lorac_blocks bufs;    /* what the writer points at until it writes */
    quant_type type;
    const char *path;
} merge_out;

static int is_float_type(int t) { return t == QUANT_F32 || t == QUANT_F16 || t == QUANT_BF16; }

/* A matrix in GGUF order: copied as stored when nothing changes it, else merged in f32, permuted back
 * to GGUF row order and converted to the output type (a block type whose block does not divide the
 * row falls back to Q8_0, then F16, as llama.cpp's quantizer does). */
static int emit_matrix(merge_out *o, const model *m, const model_tensor *t, lorac_err *err) {
    const gguf_tensor *src = model_gguf(m) ? gguf_find_tensor(model_gguf(m), t->gguf) : NULL;
    const qmat *q = t->q;
    int64_t ne[2] = {q->cols, q->rows};
    int changed = (t->site >= 0 && model_site_lora(m, t->layer, t->site)) || (q == &m->embed && m->embed_lora);
    int keep = !changed && src && ((int)q->type == (int)o->type || (!is_float_type(o->type) && !is_float_type(q->type)));
    if (keep) return gguf_writer_add_tensor(o->w, t->gguf, src->type, 2, ne, src->data);
    int type = quant_can_quantize(o->type) ? (int)o->type : QUANT_Q8_0; /* Q5_x: no quantizer in lorac */
    if ((size_t)q->cols % quant_block_size(type)) type = q->cols % 32 ? QUANT_F16 : QUANT_Q8_0;
    size_t rb = 0, n = (size_t)q->rows * q->cols;
    float *f = malloc(n * sizeof *f);
    uint8_t *dst = quant_row_size(type, (size_t)q->cols, &rb) ? NULL : lorac_blocks_alloc(&o->bufs, rb * (size_t)q->rows);
    int rc = f && dst ? model_tensor_matrix_f32(m, t, 1, f, err) : lorac_fail(err, LORAC_ENOMEM, "%s: out of memory for %s", o->path, t->gguf);
    for (int g = 0; !rc && g < q->rows; g++) {
        int r = t->permute ? model_gguf_row_to_hf(g, m->cfg.head_dim) : g;
        quant_row_from_f32(type, f + (size_t)r * q->cols, dst + (size_t)g * rb, (size_t)q->cols);
    }
    free(f);
    return rc ? rc : gguf_writer_add_tensor(o->w, t->gguf, type, 2, ne, dst);
}

static int emit_vector(merge_out *o, const model *m, const char *name, const float *v, int64_t n, int perm) {
    float *dst = lorac_blocks_alloc(&o->bufs, (size_t)n * sizeof *dst);
    if (!dst) return LORAC_ENOMEM;
    for (int64_t g = 0; g < n; g++) dst[g] = v[perm ? model_gguf_row_to_hf((int)g, m->cfg.head_dim) : g];
    int64_t ne[1] = {n};
    return gguf_writer_add_tensor(o->w, name, QUANT_F32, 1, ne, dst);
}

/* llama.cpp's general.file_type for an output type (LLAMA_FTYPE_*). */
static int ftype_of(int type) {
    static const int map[][2] = {{QUANT_F32, 0}, {QUANT_F16, 1}, {QUANT_Q4_0, 2}, {QUANT_Q4_1, 3}, {QUANT_Q8_0, 7},
                                 {QUANT_Q5_0, 8}, {QUANT_Q5_1, 9}, {QUANT_Q5_K, 17}, {QUANT_Q4_K, 15}, {QUANT_Q6_K, 18},
                                 {QUANT_BF16, 32}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (map[i][0] == type) return map[i][1];
    return -1;
}

/* The architecture's keys of a model loaded from an HF directory (no tokenizer to copy). */
static void write_config_kvs(gguf_writer *w, const model *m, const char *a) {
    const model_config *c = &m->cfg;
    char k[96];
#define KEY(suffix) (snprintf(k, sizeof k, "%s.%s", a, suffix), k)
    gguf_writer_add_str(w, "general.architecture", a);
    gguf_writer_add_str(w, "general.name", "lorac merged model");
    gguf_writer_add_u32(w, KEY("context_length"), (uint32_t)c->n_positions);
    gguf_writer_add_u32(w, KEY("embedding_length"), (uint32_t)c->n_embd);
    gguf_writer_add_u32(w, KEY("block_count"), (uint32_t)c->n_layer);
    gguf_writer_add_u32(w, KEY("feed_forward_length"), (uint32_t)c->n_inner);
    gguf_writer_add_u32(w, KEY("rope.dimension_count"), (uint32_t)c->head_dim);
    gguf_writer_add_u32(w, KEY("attention.head_count"), (uint32_t)c->n_head);
    gguf_writer_add_u32(w, KEY("attention.head_count_kv"), (uint32_t)c->n_kv_head);
    if (c->head_dim * c->n_head != c->n_embd) {
        gguf_writer_add_u32(w, KEY("attention.key_length"), (uint32_t)c->head_dim);
        gguf_writer_add_u32(w, KEY("attention.value_length"), (uint32_t)c->head_dim);
    }
    gguf_writer_add_f32(w, KEY(c->norm == MODEL_NORM_RMS ? "attention.layer_norm_rms_epsilon" : "attention.layer_norm_epsilon"),
                        (float)c->norm_eps);
    gguf_writer_add_f32(w, KEY("rope.freq_base"), (float)c->rope.theta);
    if (c->rope.scaling == ROPE_SCALING_LINEAR) {
        gguf_writer_add_str(w, KEY("rope.scaling.type"), "linear");
        gguf_writer_add_f32(w, KEY("rope.scaling.factor"), (float)c->rope.factor);
    }
    if (c->bos_token_id >= 0) gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)c->bos_token_id);
    if (c->eos_token_id >= 0) gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)c->eos_token_id);
#undef KEY
}

static int write_tensors(merge_out *o, model *m, lorac_err *err) {
    model_tensor *t = NULL;
    size_t n = 0;
    int rc = model_tensors(m, &t, &n, err);
    for (size_t i = 0; i < n && !rc; i++) {
        if (t[i].q) rc = emit_matrix(o, m, &t[i], err);
        else rc = emit_vector(o, m, t[i].gguf, *t[i].f32, t[i].shape[0] * (t[i].ndim == 2 ? t[i].shape[1] : 1), t[i].permute);
    }
    /* a merged embedding LoRA changes the lookup only: the tied head keeps W0 as output.weight */
    if (!rc && m->embed_lora && m->cfg.tie_word_embeddings) {
        model_tensor h = model_tied_head(m);
        rc = h.name[0] ? emit_matrix(o, m, &h, err) : lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", o->path);
    }
    if (!rc && m->rope_freqs) rc = emit_vector(o, m, "rope_freqs.weight", m->rope_freqs, m->cfg.head_dim / 2, 0);
    free(t);
    if (rc && !err->msg[0]) rc = lorac_fail(err, rc, "%s: cannot add a tensor", o->path);
    return rc;
}

static int merged_gguf(model *m, const char *path, int type, lorac_err *err) {
    int permute;
    const char *arch = m->fam->gguf_arch ? m->fam->gguf_arch(&m->cfg, &permute) : NULL;
    if (!arch) return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: GGUF output is for Llama-family models", path);
    if (!quant_can_dequantize(type) || ftype_of(type) < 0)
        return lorac_fail(err, LORAC_EINVAL, "%s: cannot write merged weights as %s", path,
                          quant_type_name(type) ? quant_type_name(type) : "an unknown type");
    if (m->cfg.rope.scaling == ROPE_SCALING_LLAMA3 && !m->rope_freqs)
        return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: llama3 rope scaling from config.json is not written to GGUF yet", path);
    merge_out o = {gguf_writer_new(), {0}, (quant_type)type, path};
    if (!o.w) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", path);
    const gguf_file *g = model_gguf(m);
    for (size_t i = 0; g && i < g->n_kv; i++) { /* every key of the base (tokenizer, chat template, ...) but the file type */
        const gguf_kv *kv = &g->kvs[i];
        if (strcmp(kv->key, "general.file_type") && strcmp(kv->key, "general.alignment")) gguf_writer_copy_kv(o.w, kv);
    }
    if (!g) write_config_kvs(o.w, m, arch);
    gguf_writer_add_u32(o.w, "general.file_type", (uint32_t)ftype_of(type));
    if (err) err->msg[0] = 0;
    int rc = write_tensors(&o, m, err);
    if (!rc) rc = gguf_writer_write(o.w, path, err);
    gguf_writer_free(o.w);
    lorac_blocks_free(&o.bufs);
    return rc;
}

int model_save_merged(model *m, const char *path, int type, lorac_err *err) {
    if (!lorac_has_suffix(path, ".gguf")) return merged_hf(m, path, err);
    int t = type >= 0 ? type : QUANT_F32;
    for (int s = 0; type < 0 && s < ARCH_N_SITES; s++) /* the base's own: its first matrix's type */
        if (m->fam->site[s]) {
            t = m->layers[0].site[s].w.type;
            break;
        }
    return merged_gguf(m, path, t, err);
}
