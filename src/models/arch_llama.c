/* The Llama family (Llama 2/3, TinyLlama, SmolLM2, Mistral, Qwen2): pre-RMSNorm blocks, rotary
 * positions (rope_theta, linear or llama3 scaling), split q/k/v projections with grouped kv heads
 * (q/k/v biases for Qwen2 and attention_bias), SwiGLU MLP, LM head (or the tied embedding). */
#include <string.h>

#include "models/arch.h"

static void llama_defaults(model_config *c) {
    c->norm = MODEL_NORM_RMS;
    c->pos = MODEL_POS_ROPE;
    c->pos_padding_idx = -1;
    c->causal = c->final_norm = 1;
    c->act = MODEL_ACT_SWIGLU;
    c->head = MODEL_HEAD_LM;
    c->qkv_bias = !strcmp(c->model_type, "qwen2");
    c->n_layer = 2, c->n_embd = 64, c->n_head = c->n_kv_head = 4, c->head_dim = 16, c->n_inner = 128;
    c->n_positions = 2048, c->vocab_size = 32000, c->num_labels = 1;
    c->norm_eps = 1e-6;
    c->rope.theta = 10000.0;
    c->rope.factor = 1.0;
    c->bos_token_id = c->eos_token_id = c->pad_token_id = -1;
    c->initializer_range = 0.02f;
}

static int llama_read(const json_value *r, const char *path, model_config *c, lorac_err *err) {
    int rc = LORAC_OK, qwen2 = !strcmp(c->model_type, "qwen2");
    c->n_layer = (int)json_field_int(r, "num_hidden_layers", NULL, -1, path, &rc, err);
    c->n_embd = (int)json_field_int(r, "hidden_size", NULL, -1, path, &rc, err);
    c->n_inner = (int)json_field_int(r, "intermediate_size", NULL, -1, path, &rc, err);
    c->n_head = (int)json_field_int(r, "num_attention_heads", NULL, -1, path, &rc, err);
    c->n_kv_head = (int)json_field_int(r, "num_key_value_heads", NULL, c->n_head, path, &rc, err);
    c->head_dim = (int)json_field_int(r, "head_dim", NULL, c->n_head > 0 ? c->n_embd / c->n_head : -1, path, &rc, err);
    c->n_positions = (int)json_field_int(r, "max_position_embeddings", NULL, 2048, path, &rc, err);
    c->vocab_size = (int)json_field_int(r, "vocab_size", NULL, 32000, path, &rc, err);
    c->norm_eps = json_field_num(r, "rms_norm_eps", 1e-6, path, &rc, err);
    c->tie_word_embeddings = json_field_bool(r, "tie_word_embeddings", 0, path, &rc, err);
    int attention_bias = json_field_bool(r, "attention_bias", 0, path, &rc, err);
    c->qkv_bias = qwen2 || attention_bias;
    c->o_bias = !qwen2 && attention_bias;
    c->bos_token_id = hf_config_token(r, "bos_token_id", -1, path, &rc, err);
    c->eos_token_id = hf_config_token(r, "eos_token_id", -1, path, &rc, err);
    c->pad_token_id = hf_config_token(r, "pad_token_id", -1, path, &rc, err);
    c->attn_dropout = json_field_prob(r, "attention_dropout", 0.0, path, &rc, err);
    /* a sliding window (Mistral's; Qwen2's on the layers from max_window_layers on, when
     * use_sliding_window; transformers 5's layer_types) changes nothing for sequences no longer than
     * the window: lorac takes only those (model_max_len) */
    int window = (int)json_field_int(r, "sliding_window", NULL, 0, path, &rc, err), sliding = 0;
    int use = qwen2 ? json_field_bool(r, "use_sliding_window", 0, path, &rc, err) &&
                          json_field_int(r, "max_window_layers", NULL, c->n_layer, path, &rc, err) < c->n_layer
                    : 1;
    if (!rc) rc = hf_config_layer_types(r, path, &sliding, err);
    if (rc) return rc;
    c->sliding_window = use || sliding ? window : 0;
    if ((rc = cfg_act(r, "hidden_act", "silu", 1u << MODEL_ACT_SWIGLU, path, c, err))) return rc;
    if (json_field_bool(r, "mlp_bias", 0, path, &rc, err))
        return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: mlp_bias is not supported", path);
    return rc ? rc : hf_config_rope(r, path, &c->rope, err);
}

static int llama_write(json_writer *w, const model_config *c, const char *path, lorac_err *err) {
    if (c->qkv_bias != (!strcmp(c->model_type, "qwen2") || c->o_bias))
        return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: q/k/v biases without an o_proj bias have no config.json form", path);
    const char *arch = !strcmp(c->model_type, "qwen2")     ? "Qwen2ForCausalLM"
                       : !strcmp(c->model_type, "mistral") ? "MistralForCausalLM"
                                                           : "LlamaForCausalLM";
    cfg_write_class(w, arch, "hidden_act", c);
    jw_key_int(w, "hidden_size", c->n_embd);
    jw_key_int(w, "intermediate_size", c->n_inner);
    jw_key_int(w, "num_hidden_layers", c->n_layer);
    jw_key_int(w, "num_attention_heads", c->n_head);
    jw_key_int(w, "num_key_value_heads", c->n_kv_head);
    jw_key_int(w, "head_dim", c->head_dim);
    jw_key_int(w, "max_position_embeddings", c->n_positions);
    jw_key_int(w, "vocab_size", c->vocab_size);
    jw_key_double(w, "rms_norm_eps", c->norm_eps);
    hf_config_write_rope(w, &c->rope);
    if (strcmp(c->model_type, "qwen2")) {
        jw_key(w, "attention_bias");
        jw_bool(w, c->o_bias);
    }
    if (c->sliding_window > 0) jw_key_int(w, "sliding_window", c->sliding_window);
    return LORAC_OK;
}

/* llama.cpp writes Mistral as "llama"; its converter permutes q/k rows for that architecture only */
static const char *llama_gguf_arch(const model_config *c, int *permute_qk) {
    int qwen2 = !strcmp(c->model_type, "qwen2");
    *permute_qk = !qwen2;
    return qwen2 ? "qwen2" : "llama";
}

const arch_family ARCH_LLAMA = {
    .name = "Llama",
    .model_types = {"llama", "mistral", "qwen2", NULL},
    .read_config = llama_read,
    .write_config = llama_write,
    .defaults = llama_defaults,
    .prefix = "model.",
    .embed = "embed_tokens",
    .layer = "layers.%d.",
    .site = {[ARCH_Q] = "self_attn.q_proj", [ARCH_K] = "self_attn.k_proj", [ARCH_V] = "self_attn.v_proj",
             [ARCH_O] = "self_attn.o_proj", [ARCH_GATE] = "mlp.gate_proj", [ARCH_UP] = "mlp.up_proj",
             [ARCH_DOWN] = "mlp.down_proj"},
    .norm = {"input_layernorm", "post_attention_layernorm"},
    .final_norm = "norm",
    .lm_head = "^lm_head",
    .gguf_arch = llama_gguf_arch,
    .gguf_site = {[ARCH_Q] = "attn_q", [ARCH_K] = "attn_k", [ARCH_V] = "attn_v", [ARCH_O] = "attn_output",
                  [ARCH_GATE] = "ffn_gate", [ARCH_UP] = "ffn_up", [ARCH_DOWN] = "ffn_down"},
    .gguf_norm = {"attn_norm", "ffn_norm"},
    .lora_r = 8,
    .lora_alpha = 16.0f,
    .lora_dropout = 0.05f,
    .lora_targets = "q_proj,v_proj",
    .embed_alias = "embed_tokens",
    .targets_help = "q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, embed_tokens, all-linear",
    .tok = TEXT_TOK_ANY,
};
