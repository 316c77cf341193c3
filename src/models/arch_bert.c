/* BERT and RoBERTa encoders with a sequence-classification head (BertForSequenceClassification,
 * RobertaForSequenceClassification): post-LayerNorm blocks, learned absolute positions (RoBERTa's
 * counted from padding_idx + 1), token types, bidirectional attention with a padding mask, GELU MLP,
 * an embedding LayerNorm; the head is BERT's pooler + classifier or RoBERTa's classifier.dense +
 * out_proj; num_labels 1 is regression. */
#include <string.h>

#include "models/arch.h"

static void bert_defaults(model_config *c) {
    int roberta = !strcmp(c->model_type, "roberta");
    c->norm = MODEL_NORM_LAYER;
    c->post_norm = c->emb_norm = 1;
    c->pos = MODEL_POS_LEARNED;
    c->act = MODEL_ACT_GELU_ERF;
    c->head = roberta ? MODEL_HEAD_CLS_DENSE : MODEL_HEAD_CLS_POOLER;
    c->qkv_bias = c->o_bias = c->mlp_bias = 1;
    c->n_layer = 2, c->n_embd = 64, c->n_head = c->n_kv_head = 4, c->head_dim = 16, c->n_inner = 128;
    c->n_positions = 512, c->vocab_size = 1000, c->type_vocab = 2, c->num_labels = 2;
    c->norm_eps = 1e-12;
    c->pad_token_id = roberta ? 1 : 0;
    c->pos_padding_idx = roberta ? c->pad_token_id : -1;
    c->bos_token_id = c->eos_token_id = -1;
    c->hidden_dropout = c->classifier_dropout = c->attn_dropout = 0.1f;
    c->initializer_range = 0.02f;
}

static int bert_read(const json_value *r, const char *path, model_config *c, lorac_err *err) {
    int rc = LORAC_OK, roberta = c->head == MODEL_HEAD_CLS_DENSE;
    c->n_embd = (int)json_field_int(r, "hidden_size", NULL, -1, path, &rc, err);
    c->n_layer = (int)json_field_int(r, "num_hidden_layers", NULL, -1, path, &rc, err);
    c->n_head = (int)json_field_int(r, "num_attention_heads", NULL, -1, path, &rc, err);
    c->n_inner = (int)json_field_int(r, "intermediate_size", NULL, -1, path, &rc, err);
    c->vocab_size = (int)json_field_int(r, "vocab_size", NULL, -1, path, &rc, err);
    c->n_positions = (int)json_field_int(r, "max_position_embeddings", NULL, 512, path, &rc, err);
    c->type_vocab = (int)json_field_int(r, "type_vocab_size", NULL, 2, path, &rc, err);
    c->pad_token_id = (int)json_field_int(r, "pad_token_id", NULL, roberta ? 1 : 0, path, &rc, err);
    c->norm_eps = json_field_num(r, "layer_norm_eps", 1e-12, path, &rc, err);
    c->initializer_range = (float)json_field_num(r, "initializer_range", 0.02, path, &rc, err);
    c->hidden_dropout = json_field_prob(r, "hidden_dropout_prob", 0.1, path, &rc, err);
    c->attn_dropout = json_field_prob(r, "attention_probs_dropout_prob", 0.1, path, &rc, err);
    c->classifier_dropout = json_field_prob(r, "classifier_dropout", c->hidden_dropout, path, &rc, err);
    /* num_labels: explicit, else the size of id2label, else 2 (HF's PretrainedConfig default) */
    const json_value *id2 = json_get(r, "id2label");
    c->num_labels = (int)json_field_int(r, "num_labels", NULL, id2 && json_kind(id2) == JSON_OBJECT ? (long long)json_len(id2) : 2,
                                 path, &rc, err);
    if (rc) return rc;
    if (c->pad_token_id < 0 || c->pad_token_id >= c->vocab_size)
        return lorac_fail(err, LORAC_EFORMAT, "%s: \"pad_token_id\" %d is outside the vocabulary", path, c->pad_token_id);
    c->pos_padding_idx = roberta ? c->pad_token_id : -1;
    c->n_kv_head = c->n_head;
    if (c->n_head <= 0 || c->n_embd % c->n_head)
        return lorac_fail(err, LORAC_EFORMAT, "%s: num_attention_heads %d does not divide hidden_size %d", path, c->n_head,
                          c->n_embd);
    c->head_dim = c->n_embd / c->n_head;
    if ((rc = cfg_act(r, "hidden_act", "gelu", (1u << MODEL_ACT_GELU_TANH | 1u << MODEL_ACT_GELU_ERF), path, c, err))) return rc;
    const char *pet = json_get_str(r, "position_embedding_type", "absolute", NULL);
    if (pet && strcmp(pet, "absolute"))
        return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: position_embedding_type \"%s\" is not supported (absolute)", path, pet);
    if (json_field_bool(r, "is_decoder", 0, path, &rc, err) || json_field_bool(r, "add_cross_attention", 0, path, &rc, err))
        return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: is_decoder / add_cross_attention are not supported", path);
    return rc;
}

static int bert_write(json_writer *w, const model_config *c, const char *path, lorac_err *err) {
    cfg_write_class(w, c->head == MODEL_HEAD_CLS_DENSE ? "RobertaForSequenceClassification" : "BertForSequenceClassification",
                    "hidden_act", c);
    jw_key_int(w, "hidden_size", c->n_embd);
    jw_key_int(w, "num_hidden_layers", c->n_layer);
    jw_key_int(w, "num_attention_heads", c->n_head);
    jw_key_int(w, "intermediate_size", c->n_inner);
    jw_key_int(w, "vocab_size", c->vocab_size);
    jw_key_int(w, "max_position_embeddings", c->n_positions);
    jw_key_int(w, "type_vocab_size", c->type_vocab);
    jw_key_int(w, "pad_token_id", c->pad_token_id);
    jw_key_int(w, "num_labels", c->num_labels);
    jw_key_double(w, "layer_norm_eps", c->norm_eps);
    jw_key_double(w, "initializer_range", c->initializer_range);
    jw_key_double(w, "hidden_dropout_prob", c->hidden_dropout);
    jw_key_double(w, "attention_probs_dropout_prob", c->attn_dropout);
    jw_key_double(w, "classifier_dropout", c->classifier_dropout);
    jw_key(w, "position_embedding_type");
    jw_string(w, "absolute");
    (void)path, (void)err;
    return LORAC_OK;
}

#define BERT_COMMON                                                                                             \
    .read_config = bert_read, .write_config = bert_write, .defaults = bert_defaults,                            \
    .embed = "embeddings.word_embeddings", .pos_embed = "embeddings.position_embeddings",                       \
    .type_embed = "embeddings.token_type_embeddings", .emb_norm = "embeddings.LayerNorm",                       \
    .layer = "encoder.layer.%d.",                                                                               \
    .site = {[ARCH_Q] = "attention.self.query", [ARCH_K] = "attention.self.key",                                \
             [ARCH_V] = "attention.self.value", [ARCH_O] = "attention.output.dense",                            \
             [ARCH_UP] = "intermediate.dense", [ARCH_DOWN] = "output.dense"},                                   \
    .norm = {"attention.output.LayerNorm", "output.LayerNorm"}, .lora_r = 8, .lora_alpha = 16.0f,               \
    .lora_dropout = 0.1f, .lora_targets = "query,value", .embed_alias = "word_embeddings",                     \
    .targets_help = "query, key, value, attention.output.dense, intermediate.dense, output.dense, "             \
                    "word_embeddings, all-linear"

const arch_family ARCH_BERT = {
    .name = "BERT",
    .model_types = {"bert", NULL},
    BERT_COMMON,
    .prefix = "bert.",
    .cls = {"pooler.dense", "^classifier"},
    .cls_save = {"classifier", "pooler"},
    .tok = TEXT_TOK_WORDPIECE,
    .cls_tok = "[CLS]",
    .sep_tok = "[SEP]",
    .pad_tok = "[PAD]",
    .pair_seps = 1,
    .pair_type_ids = 1,
};

const arch_family ARCH_ROBERTA = {
    .name = "RoBERTa",
    .model_types = {"roberta", NULL},
    BERT_COMMON,
    .prefix = "roberta.",
    .cls = {"^classifier.dense", "^classifier.out_proj"},
    .cls_save = {"classifier", NULL},
    .tok = TEXT_TOK_BPE_FILES,
    .cls_tok = "<s>",
    .sep_tok = "</s>",
    .pad_tok = "<pad>",
    .pair_seps = 2,
    .pair_type_ids = 0,
};
