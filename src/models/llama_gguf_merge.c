/* Merged outputs: W + s·B·A computed in f32 from the dequantized base (so an adapter trained on a
 * quantized base merges without a round of re-quantization error until the output type asks for
 * one), written as a GGUF for llama.cpp or as an HF directory (config.json + model.safetensors). */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "lorac/gguf.h"
#include "lorac/json.h"
#include "lorac/llama.h"
#include "lorac/safetensors.h"

static const char *const SITE_GGUF[LLAMA_N_SITES] = {"attn_q", "attn_k", "attn_v", "attn_output",
                                                     "ffn_gate", "ffn_up", "ffn_down"};

static const char *gguf_arch(const llama_config *c) { return strcmp(c->model_type, "qwen2") ? "llama" : "qwen2"; }

static int site_permuted(const llama_config *c, int s) {
    return !strcmp(gguf_arch(c), "llama") && (s == LLAMA_SITE_Q || s == LLAMA_SITE_K);
}

/* out (rows, cols) = dequant(q) (+ s·B·A of L, HF row order). */
static void merged_f32(const qmat *q, const lora_linear *L, float *out) {
    for (int r = 0; r < q->rows; r++) qmat_row_f32(q, r, out + (size_t)r * q->cols);
    if (L) /* out(OC,C) += s · B(OC,r) · A(r,C) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, q->rows, q->cols, L->cfg.r, L->scaling, L->lora_B, L->cfg.r,
                    L->lora_A, q->cols, 1.0f, out, q->cols);
}

/* ---------------------------------------------------------------- GGUF */

typedef struct merge_out {
    gguf_writer *w;
    void **bufs;
    size_t n, cap;
    quant_type type;
    const char *path;
} merge_out;

static void *out_alloc(merge_out *o, size_t bytes) {
    if (o->n == o->cap) {
        size_t cap = o->cap ? 2 * o->cap : 64;
        void **b = realloc(o->bufs, cap * sizeof *b);
        if (!b) return NULL;
        o->bufs = b;
        o->cap = cap;
    }
    void *p = malloc(bytes ? bytes : 1);
    if (p) o->bufs[o->n++] = p;
    return p;
}

static int is_float_type(int t) { return t == QUANT_F32 || t == QUANT_F16 || t == QUANT_BF16; }

/* A matrix in GGUF order: copied as stored when nothing changes it, else merged in f32, permuted
 * back to GGUF row order and converted to the output type (a block type whose block does not
 * divide the row falls back to Q8_0, then F16, as llama.cpp's quantizer does). */
static int emit_matrix(merge_out *o, const llama_model *m, const char *name, const qmat *q, const lora_linear *L,
                       int perm, lorac_err *err) {
    const gguf_tensor *src = m->w.gguf ? gguf_find_tensor(m->w.gguf, name) : NULL;
    int64_t ne[2] = {q->cols, q->rows};
    int keep = !L && src && ((int)q->type == (int)o->type || (!is_float_type(o->type) && !is_float_type(q->type)));
    if (keep) return gguf_writer_add_tensor(o->w, name, src->type, 2, ne, src->data);
    int type = quant_can_quantize(o->type) ? (int)o->type : QUANT_Q8_0; /* Q5_x: no quantizer in lorac */
    if ((size_t)q->cols % quant_block_size(type)) type = q->cols % 32 ? QUANT_F16 : QUANT_Q8_0;
    size_t rb = 0, n = (size_t)q->rows * q->cols;
    float *f = malloc(n * sizeof *f);
    uint8_t *dst = quant_row_size(type, (size_t)q->cols, &rb) ? NULL : out_alloc(o, rb * (size_t)q->rows);
    if (!f || !dst) {
        free(f);
        return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory for %s", o->path, name);
    }
    merged_f32(q, L, f);
    for (int g = 0; g < q->rows; g++) {
        int r = perm ? llama_gguf_row_to_hf(g, m->cfg.head_dim) : g;
        quant_row_from_f32(type, f + (size_t)r * q->cols, dst + (size_t)g * rb, (size_t)q->cols);
    }
    free(f);
    return gguf_writer_add_tensor(o->w, name, type, 2, ne, dst);
}

static int emit_vector(merge_out *o, const llama_model *m, const char *name, const float *v, int n, int perm) {
    float *dst = out_alloc(o, (size_t)n * sizeof *dst);
    if (!dst) return LORAC_ENOMEM;
    for (int g = 0; g < n; g++) dst[g] = v[perm ? llama_gguf_row_to_hf(g, m->cfg.head_dim) : g];
    int64_t ne[1] = {n};
    return gguf_writer_add_tensor(o->w, name, QUANT_F32, 1, ne, dst);
}

/* llama.cpp's general.file_type for an output type (LLAMA_FTYPE_*). */
static int ftype_of(int type) {
    switch (type) {
    case QUANT_F32: return 0;
    case QUANT_F16: return 1;
    case QUANT_Q4_0: return 2;
    case QUANT_Q4_1: return 3;
    case QUANT_Q8_0: return 7;
    case QUANT_Q5_0: return 8;
    case QUANT_Q5_1: return 9;
    case QUANT_Q5_K: return 17;
    case QUANT_Q4_K: return 15;
    case QUANT_Q6_K: return 18;
    case QUANT_BF16: return 32;
    default: return -1;
    }
}

/* The llama.* keys of a model loaded from an HF directory (no tokenizer to copy). */
static void write_config_kvs(gguf_writer *w, const llama_config *c) {
    const char *a = gguf_arch(c);
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
    gguf_writer_add_f32(w, KEY("attention.layer_norm_rms_epsilon"), (float)c->rms_norm_eps);
    gguf_writer_add_f32(w, KEY("rope.freq_base"), (float)c->rope_theta);
    if (c->rope_scaling == LLAMA_ROPE_LINEAR) {
        gguf_writer_add_str(w, KEY("rope.scaling.type"), "linear");
        gguf_writer_add_f32(w, KEY("rope.scaling.factor"), (float)c->rope_factor);
    }
    if (c->bos_token_id >= 0) gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)c->bos_token_id);
    if (c->eos_token_id >= 0) gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)c->eos_token_id);
#undef KEY
}

static int write_tensors(merge_out *o, const llama_model *m, lorac_err *err) {
    const llama_config *c = &m->cfg;
    const llama_weights *W = &m->w;
    int rc = emit_matrix(o, m, "token_embd.weight", &W->embed, NULL, 0, err);
    char nm[96];
    for (int l = 0; l < c->n_layer && !rc; l++) {
        const llama_layer_weights *L = &W->layers[l];
        snprintf(nm, sizeof nm, "blk.%d.attn_norm.weight", l);
        rc = emit_vector(o, m, nm, L->attn_norm, c->n_embd, 0);
        for (int s = 0; s < LLAMA_N_SITES && !rc; s++) {
            snprintf(nm, sizeof nm, "blk.%d.%s.weight", l, SITE_GGUF[s]);
            rc = emit_matrix(o, m, nm, &L->w[s], llama_model_lora(m, l, s), site_permuted(c, s), err);
            snprintf(nm, sizeof nm, "blk.%d.%s.bias", l, SITE_GGUF[s]);
            if (!rc && L->b[s]) rc = emit_vector(o, m, nm, L->b[s], L->w[s].rows, site_permuted(c, s));
        }
        snprintf(nm, sizeof nm, "blk.%d.ffn_norm.weight", l);
        if (!rc) rc = emit_vector(o, m, nm, L->mlp_norm, c->n_embd, 0);
    }
    if (!rc) rc = emit_vector(o, m, "output_norm.weight", W->norm, c->n_embd, 0);
    if (!rc && !c->tie_word_embeddings) rc = emit_matrix(o, m, "output.weight", &W->lm_head, NULL, 0, err);
    if (!rc && W->rope_freqs) rc = emit_vector(o, m, "rope_freqs.weight", W->rope_freqs, c->head_dim / 2, 0);
    if (rc && !err->msg[0]) rc = lorac_fail(err, rc, "%s: cannot add a tensor", o->path);
    return rc;
}

int llama_merged_save_gguf(llama_model *m, const char *path, quant_type type, lorac_err *err) {
    if (err) err->msg[0] = 0;
    if (!quant_can_dequantize(type) || ftype_of(type) < 0)
        return lorac_fail(err, LORAC_EINVAL, "%s: cannot write merged weights as %s", path,
                          quant_type_name(type) ? quant_type_name(type) : "an unknown type");
    if (m->cfg.rope_scaling == LLAMA_ROPE_LLAMA3 && !m->w.rope_freqs)
        return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: llama3 rope scaling from config.json is not written to GGUF yet", path);
    merge_out o = {gguf_writer_new(), NULL, 0, 0, type, path};
    if (!o.w) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", path);
    if (m->w.gguf) {
        /* every key of the base (tokenizer, chat template, ...) but the file type */
        for (size_t i = 0; i < m->w.gguf->n_kv; i++) {
            const gguf_kv *kv = &m->w.gguf->kvs[i];
            if (strcmp(kv->key, "general.file_type") && strcmp(kv->key, "general.alignment")) gguf_writer_copy_kv(o.w, kv);
        }
    } else {
        write_config_kvs(o.w, &m->cfg);
    }
    gguf_writer_add_u32(o.w, "general.file_type", (uint32_t)ftype_of(type));
    int rc = write_tensors(&o, m, err);
    if (!rc) rc = gguf_writer_write(o.w, path, err);
    gguf_writer_free(o.w);
    for (size_t i = 0; i < o.n; i++) free(o.bufs[i]);
    free(o.bufs);
    return rc;
}

/* ---------------------------------------------------------------- HF directory */

static int write_config_json(const llama_config *c, const char *path, lorac_err *err) {
    lorac_out out;
    int rc = lorac_out_open(&out, path, err);
    if (rc) return rc;
    json_writer w;
    int qwen2 = !strcmp(c->model_type, "qwen2");
    jw_init(&w, out.f, 1);
    jw_object_begin(&w);
    jw_key(&w, "architectures");
    jw_array_begin(&w);
    jw_string(&w, qwen2 ? "Qwen2ForCausalLM" : !strcmp(c->model_type, "mistral") ? "MistralForCausalLM" : "LlamaForCausalLM");
    jw_array_end(&w);
    jw_key(&w, "model_type"); jw_string(&w, c->model_type);
    jw_key(&w, "hidden_act"); jw_string(&w, "silu");
    jw_key(&w, "hidden_size"); jw_int(&w, c->n_embd);
    jw_key(&w, "intermediate_size"); jw_int(&w, c->n_inner);
    jw_key(&w, "num_hidden_layers"); jw_int(&w, c->n_layer);
    jw_key(&w, "num_attention_heads"); jw_int(&w, c->n_head);
    jw_key(&w, "num_key_value_heads"); jw_int(&w, c->n_kv_head);
    jw_key(&w, "head_dim"); jw_int(&w, c->head_dim);
    jw_key(&w, "max_position_embeddings"); jw_int(&w, c->n_positions);
    jw_key(&w, "vocab_size"); jw_int(&w, c->vocab_size);
    jw_key(&w, "rms_norm_eps"); jw_double(&w, c->rms_norm_eps);
    jw_key(&w, "rope_theta"); jw_double(&w, c->rope_theta);
    jw_key(&w, "rope_scaling");
    if (c->rope_scaling == LLAMA_ROPE_NONE) {
        jw_null(&w);
    } else {
        jw_object_begin(&w);
        jw_key(&w, "rope_type"); jw_string(&w, c->rope_scaling == LLAMA_ROPE_LINEAR ? "linear" : "llama3");
        jw_key(&w, "factor"); jw_double(&w, c->rope_factor);
        if (c->rope_scaling == LLAMA_ROPE_LLAMA3) {
            jw_key(&w, "low_freq_factor"); jw_double(&w, c->rope_low_freq_factor);
            jw_key(&w, "high_freq_factor"); jw_double(&w, c->rope_high_freq_factor);
            jw_key(&w, "original_max_position_embeddings"); jw_int(&w, c->rope_original_max_positions);
        }
        jw_object_end(&w);
    }
    jw_key(&w, "tie_word_embeddings"); jw_bool(&w, c->tie_word_embeddings);
    if (!qwen2) { jw_key(&w, "attention_bias"); jw_bool(&w, c->o_bias); }
    if (c->bos_token_id >= 0) { jw_key(&w, "bos_token_id"); jw_int(&w, c->bos_token_id); }
    if (c->eos_token_id >= 0) { jw_key(&w, "eos_token_id"); jw_int(&w, c->eos_token_id); }
    jw_key(&w, "torch_dtype"); jw_string(&w, "float32");
    jw_object_end(&w);
    fputc('\n', out.f);
    if (w.error) {
        lorac_out_abort(&out);
        return lorac_fail(err, LORAC_EINVAL, "%s: JSON writer error", path);
    }
    return lorac_out_commit(&out, err);
}

int llama_merged_save_hf(llama_model *m, const char *dir, lorac_err *err) {
    const llama_config *c = &m->cfg;
    if (m->w.rope_freqs)
        return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: the GGUF's rope_freqs factors cannot be written to config.json", dir);
    if (c->qkv_bias != (!strcmp(c->model_type, "qwen2") || c->o_bias))
        return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: q/k/v biases without an o_proj bias have no config.json form", dir);
    size_t max = 3 + (size_t)c->n_layer * (2 + 2 * LLAMA_N_SITES), n = 0, nbuf = 0;
    st_entry *e = calloc(max, sizeof *e);
    char (*names)[160] = calloc(max, sizeof *names);
    float **bufs = calloc(max, sizeof *bufs);
    int rc = e && names && bufs ? LORAC_OK : lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", dir);
#define ADD(nm_, data_, d0_, d1_)                                                                  \
    do {                                                                                           \
        snprintf(names[n], sizeof names[n], "%s", (nm_));                                          \
        e[n] = (st_entry){names[n], ST_F32, ST_F32, (d1_) ? 2 : 1, {(d0_), (d1_)}, (data_)};        \
        n++;                                                                                       \
    } while (0)
    /* a matrix as f32, merged with its LoRA layer (if any) */
#define ADD_MAT(nm_, q_, L_)                                                                       \
    do {                                                                                           \
        float *f_ = bufs[nbuf++] = malloc((size_t)(q_)->rows * (q_)->cols * sizeof(float));        \
        if (!f_) { rc = lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", dir); break; }          \
        merged_f32((q_), (L_), f_);                                                                \
        ADD((nm_), f_, (q_)->rows, (q_)->cols);                                                    \
    } while (0)
    char nm[160];
    if (!rc) ADD_MAT("model.embed_tokens.weight", &m->w.embed, NULL);
    for (int l = 0; l < c->n_layer && !rc; l++) {
        const llama_layer_weights *L = &m->w.layers[l];
        snprintf(nm, sizeof nm, "model.layers.%d.input_layernorm.weight", l);
        ADD(nm, L->attn_norm, c->n_embd, 0);
        for (int s = 0; s < LLAMA_N_SITES && !rc; s++) {
            snprintf(nm, sizeof nm, "model.layers.%d.%s.weight", l, llama_site_name(s));
            ADD_MAT(nm, &L->w[s], llama_model_lora(m, l, s));
            snprintf(nm, sizeof nm, "model.layers.%d.%s.bias", l, llama_site_name(s));
            if (!rc && L->b[s]) ADD(nm, L->b[s], L->w[s].rows, 0);
        }
        snprintf(nm, sizeof nm, "model.layers.%d.post_attention_layernorm.weight", l);
        ADD(nm, L->mlp_norm, c->n_embd, 0);
    }
    if (!rc) ADD("model.norm.weight", m->w.norm, c->n_embd, 0);
    if (!rc && !c->tie_word_embeddings) ADD_MAT("lm_head.weight", &m->w.lm_head, NULL);
#undef ADD_MAT
#undef ADD
    lorac_outdir od;
    if (!rc) rc = lorac_outdir_open(&od, dir, err);
    if (!rc) {
        char path[4200];
        const char *mk[1] = {"format"}, *mv[1] = {"pt"};
        snprintf(path, sizeof path, "%s/model.safetensors", od.tmp);
        rc = st_write(path, e, n, mk, mv, 1, err);
        snprintf(path, sizeof path, "%s/config.json", od.tmp);
        if (!rc) rc = write_config_json(c, path, err);
        if (!rc) rc = lorac_outdir_commit(&od, err);
        else lorac_outdir_abort(&od);
    }
    for (size_t i = 0; i < nbuf; i++) free(bufs[i]);
    free(bufs);
    free(names);
    free(e);
    return rc;
}
