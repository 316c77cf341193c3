/* GPT-2 (gpt2 to gpt2-xl shapes): pre-LayerNorm blocks, learned positions, one fused q/k/v
 * projection (c_attn) with all maps stored (in, out) as Conv1D, GELU MLP, LM head tied to wte. */
#include <string.h>

#include "models/arch.h"

static void gpt2_defaults(model_config *c) {
    c->norm = MODEL_NORM_LAYER;
    c->pos = MODEL_POS_LEARNED;
    c->pos_padding_idx = -1;
    c->fused_qkv = c->conv1d = c->causal = c->final_norm = 1;
    c->act = MODEL_ACT_GELU_TANH;
    c->head = MODEL_HEAD_LM;
    c->qkv_bias = c->o_bias = c->mlp_bias = 1;
    c->tie_word_embeddings = 1;
    c->n_layer = 12, c->n_embd = 768, c->n_head = c->n_kv_head = 12, c->head_dim = 64, c->n_inner = 3072;
    c->n_positions = 1024, c->vocab_size = 50257, c->num_labels = 1;
    c->norm_eps = 1e-5;
    c->bos_token_id = c->eos_token_id = 50256, c->pad_token_id = -1;
    c->initializer_range = 0.02f;
}

static int gpt2_read(const json_value *r, const char *path, model_config *c, lorac_err *err) {
    int rc = LORAC_OK;
    c->n_layer = (int)json_field_int(r, "n_layer", "num_hidden_layers", -1, path, &rc, err);
    c->n_embd = (int)json_field_int(r, "n_embd", "hidden_size", -1, path, &rc, err);
    c->n_head = (int)json_field_int(r, "n_head", "num_attention_heads", -1, path, &rc, err);
    c->n_positions = (int)json_field_int(r, "n_positions", "max_position_embeddings", 1024, path, &rc, err);
    c->vocab_size = (int)json_field_int(r, "vocab_size", NULL, 50257, path, &rc, err);
    long long inner = json_field_int(r, "n_inner", NULL, -1, path, &rc, err);
    c->eos_token_id = (int)json_field_int(r, "eos_token_id", NULL, 50256, path, &rc, err);
    c->bos_token_id = (int)json_field_int(r, "bos_token_id", NULL, 50256, path, &rc, err);
    c->tie_word_embeddings = json_field_bool(r, "tie_word_embeddings", 1, path, &rc, err);
    c->norm_eps = json_field_num(r, "layer_norm_epsilon", 1e-5, path, &rc, err);
    if (rc) return rc;
    c->n_kv_head = c->n_head;
    c->head_dim = c->n_head > 0 && c->n_embd % c->n_head == 0 ? c->n_embd / c->n_head : -1;
    c->n_inner = inner > 0 ? (int)inner : 4 * c->n_embd;
    if ((rc = cfg_act(r, "activation_function", "gelu_new", (1u << MODEL_ACT_GELU_TANH | 1u << MODEL_ACT_GELU_ERF), path, c, err))) return rc;
    if (json_field_bool(r, "scale_attn_by_inverse_layer_idx", 0, path, &rc, err))
        return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: scale_attn_by_inverse_layer_idx is not supported", path);
    if (!json_field_bool(r, "scale_attn_weights", 1, path, &rc, err))
        return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: scale_attn_weights=false is not supported", path);
    if (json_field_bool(r, "add_cross_attention", 0, path, &rc, err))
        return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: add_cross_attention is not supported", path);
    return rc;
}

static int gpt2_write(json_writer *w, const model_config *c, const char *path, lorac_err *err) {
    cfg_write_class(w, "GPT2LMHeadModel", "activation_function", c);
    jw_key_int(w, "n_layer", c->n_layer);
    jw_key_int(w, "n_embd", c->n_embd);
    jw_key_int(w, "n_head", c->n_head);
    jw_key_int(w, "n_positions", c->n_positions);
    jw_key_int(w, "n_ctx", c->n_positions);
    jw_key_int(w, "n_inner", c->n_inner);
    jw_key_int(w, "vocab_size", c->vocab_size);
    jw_key_double(w, "layer_norm_epsilon", c->norm_eps);
    (void)path, (void)err;
    return LORAC_OK;
}

const arch_family ARCH_GPT2 = {
    .name = "GPT-2",
    .model_types = {"gpt2", NULL},
    .read_config = gpt2_read,
    .write_config = gpt2_write,
    .defaults = gpt2_defaults,
    .prefix = "transformer.",
    .embed = "wte",
    .pos_embed = "wpe",
    .layer = "h.%d.",
    .site = {[ARCH_QKV] = "attn.c_attn", [ARCH_O] = "attn.c_proj", [ARCH_UP] = "mlp.c_fc", [ARCH_DOWN] = "mlp.c_proj"},
    .norm = {"ln_1", "ln_2"},
    .final_norm = "ln_f",
    .lm_head = "^lm_head",
    .lora_r = 4,
    .lora_alpha = 32.0f,
    .lora_dropout = 0.1f,
    .lora_targets = "q,v",
    .slice_names = {"q", "k", "v"},
    .embed_alias = "wte",
    .targets_help = "q, k, v, c_attn, attn.c_proj, c_fc, mlp.c_proj, c_proj, wte, all-linear",
    .tok = TEXT_TOK_BPE_FILES,
};
