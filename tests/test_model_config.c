/* config.json in the layouts transformers 5 (tests/fixtures/configs/tf5, tools/make_config_fixtures.py)
 * and 4 (the parity fixtures, 4.40) write, for every family: the structure each family's table
 * entry gives the block, the sizes, the rotary parameters (rope_parameters vs rope_theta +
 * rope_scaling), and the refusal of every setting that would change the arithmetic and is not
 * implemented (a one-line error naming it). Also random models of every family run a forward. */
#include <unistd.h>

#include "check.h"
#include "fixture.h"

#define TF5 LORAC_SOURCE_DIR "/tests/fixtures/configs/tf5"

static int load(const char *dir, model_config *c) {
    lorac_err err = {0};
    int rc = model_config_load(dir, c, &err);
    CHECK(rc == 0, "%s: %s", dir, err.msg);
    return rc;
}

static void tf5_layouts(void) {
    model_config c;
    if (!load(TF5 "/llama", &c)) /* rope_theta only inside rope_parameters (the SmolLM2 case) */
        CHECK(c.rope.theta == 100000.0 && c.rope.scaling == ROPE_SCALING_NONE && c.n_kv_head == 2 && c.head_dim == 16 &&
              c.norm == MODEL_NORM_RMS && c.pos == MODEL_POS_ROPE && c.act == MODEL_ACT_SWIGLU && c.tie_word_embeddings &&
              !c.qkv_bias && c.causal && !c.post_norm, "tf5 llama");
    if (!load(TF5 "/llama3", &c))
        CHECK(c.rope.scaling == ROPE_SCALING_LLAMA3 && c.rope.factor == 8.0 && c.rope.original_max_positions == 64 &&
              c.rope.theta == 10000.0, "tf5 llama3 scaling");
    if (!load(TF5 "/qwen2", &c)) /* layer_types all full attention, use_sliding_window false */
        CHECK(c.qkv_bias && !c.o_bias && c.sliding_window == 0 && c.n_positions == 32768, "tf5 qwen2");
    if (!load(TF5 "/mistral", &c)) CHECK(c.sliding_window == 32, "tf5 mistral window %d", c.sliding_window);
    if (!load(TF5 "/gpt2", &c))
        CHECK(c.fused_qkv && c.conv1d && c.norm == MODEL_NORM_LAYER && c.pos == MODEL_POS_LEARNED && c.n_inner == 256 &&
              c.act == MODEL_ACT_GELU_TANH && c.head == MODEL_HEAD_LM && c.hidden_dropout == 0.0f, "tf5 gpt2");
    if (!load(TF5 "/bert", &c))
        CHECK(c.post_norm && c.emb_norm && !c.final_norm && !c.causal && c.head == MODEL_HEAD_CLS_POOLER &&
              c.pos_padding_idx == -1 && c.type_vocab == 2 && c.num_labels == 2 && c.hidden_dropout == 0.1f &&
              c.act == MODEL_ACT_GELU_ERF, "tf5 bert");
    if (!load(TF5 "/roberta", &c))
        CHECK(c.head == MODEL_HEAD_CLS_DENSE && c.pos_padding_idx == 1 && c.pad_token_id == 1, "tf5 roberta");
}

static void tf4_layouts(void) {
    model_config c;
    if (!load(LORAC_SOURCE_DIR "/tests/fixtures/llama/qwen2/base", &c)) /* rope_theta at the top level */
        CHECK(c.rope.theta == 1e6 && c.qkv_bias && c.sliding_window == 0, "tf4 qwen2");
    if (!load(LORAC_SOURCE_DIR "/tests/fixtures/gpt2/tiny/base", &c)) CHECK(c.fused_qkv && c.conv1d, "tf4 gpt2");
    if (!load(LORAC_SOURCE_DIR "/tests/fixtures/bert/roberta_lora", &c)) CHECK(c.head == MODEL_HEAD_CLS_DENSE, "tf4 roberta");
}

/* A config.json of `base` (a tf5 fixture) with one key replaced or added. */
static void refuse(const char *base, const char *key, const char *value, int want_rc, const char *fragment) {
    char tmp[] = "/tmp/lorac_cfg_XXXXXX", src[512], dst[600], cmd[2048];
    if (!mkdtemp(tmp)) return;
    snprintf(src, sizeof src, "%s/%s/config.json", TF5, base);
    snprintf(dst, sizeof dst, "%s/config.json", tmp);
    char *text = NULL;
    size_t n = 0;
    lorac_err err = {0};
    if (lorac_read_file(src, &text, &n, &err)) return;
    char *brace = strchr(text, '{');
    FILE *f = fopen(dst, "w");
    fprintf(f, "{\"%s\": %s, %s", key, value, brace + 1); /* the first of a duplicated key wins in lorac's JSON */
    fclose(f);
    model_config c;
    int rc = model_config_load(tmp, &c, &err);
    CHECK(rc == want_rc && strstr(err.msg, fragment) && !strchr(err.msg, '\n'), "%s %s=%s: rc %d: %s", base, key, value, rc,
          err.msg);
    free(text);
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    CHECK(system(cmd) == 0, "cleanup");
}

/* A sliding window caps the sequences a model takes (exact up to the window): Qwen2's from its
 * max_window_layers on, transformers 5's layer_types. */
static void windows(void) {
    char tmp[] = "/tmp/lorac_win_XXXXXX", path[600];
    if (!mkdtemp(tmp)) return;
    snprintf(path, sizeof path, "%s/config.json", tmp);
    const char *cases[][2] = {
        {"\"use_sliding_window\": true, \"sliding_window\": 16, \"max_window_layers\": 1", "16"},
        {"\"use_sliding_window\": true, \"sliding_window\": 16, \"max_window_layers\": 28", "0"},
        {"\"sliding_window\": 16, \"layer_types\": [\"sliding_attention\", \"full_attention\"]", "16"},
    };
    for (int i = 0; i < 3; i++) {
        FILE *f = fopen(path, "w");
        fprintf(f, "{\"model_type\": \"qwen2\", \"hidden_size\": 32, \"intermediate_size\": 64, \"num_hidden_layers\": 2, "
                   "\"num_attention_heads\": 4, %s}", cases[i][0]);
        fclose(f);
        model_config c;
        if (!load(tmp, &c)) CHECK(c.sliding_window == atoi(cases[i][1]), "case %d: window %d", i, c.sliding_window);
    }
    remove(path);
    rmdir(tmp);
}

static void refusals(void) {
    refuse("llama", "rope_parameters", "{\"rope_type\": \"yarn\", \"factor\": 4.0, \"rope_theta\": 1e4}", LORAC_EUNSUPPORTED, "yarn");
    refuse("llama", "rope_parameters", "{\"rope_type\": \"default\", \"rope_theta\": 1e4, \"mrope_section\": [1]}",
           LORAC_EUNSUPPORTED, "mrope_section");
    refuse("llama", "rope_parameters", "{\"full_attention\": {\"rope_type\": \"default\"}}", LORAC_EUNSUPPORTED, "rope_parameters");
    refuse("llama", "partial_rotary_factor", "0.5", LORAC_EUNSUPPORTED, "partial_rotary_factor");
    refuse("llama", "hidden_act", "\"gelu\"", LORAC_EUNSUPPORTED, "hidden_act");
    refuse("llama", "mlp_bias", "true", LORAC_EUNSUPPORTED, "mlp_bias");
    refuse("qwen2", "layer_types", "[\"full_attention\", \"chunked_attention\"]", LORAC_EUNSUPPORTED, "chunked_attention");
    refuse("gpt2", "activation_function", "\"relu\"", LORAC_EUNSUPPORTED, "relu");
    refuse("gpt2", "scale_attn_by_inverse_layer_idx", "true", LORAC_EUNSUPPORTED, "scale_attn_by_inverse_layer_idx");
    refuse("bert", "position_embedding_type", "\"relative_key\"", LORAC_EUNSUPPORTED, "relative_key");
    refuse("bert", "is_decoder", "true", LORAC_EUNSUPPORTED, "is_decoder");
    refuse("bert", "hidden_dropout_prob", "1.5", LORAC_EFORMAT, "hidden_dropout_prob");
    refuse("mistral", "model_type", "\"mixtral\"", LORAC_EUNSUPPORTED, "mixtral");
}

/* A random model of each family runs a forward (and a causal one a KV-cache step); Mistral's
 * sliding window caps the sequences it takes. */
static void random_models(void) {
    const char *types[] = {"gpt2", "llama", "qwen2", "mistral", "bert", "roberta"};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        model_config c;
        lorac_err err = {0};
        model *m = NULL;
        model_acts *a = NULL;
        model_config_default(types[i], &c, &err);
        c.vocab_size = 50, c.n_positions = 64;
        if (!strcmp(types[i], "mistral")) c.sliding_window = 8;
        int rc = model_random(&c, 3, &m, &err);
        if (!rc) rc = model_acts_alloc(m, 2, 8, &a, &err);
        int32_t ids[16];
        for (int k = 0; k < 16; k++) ids[k] = (k * 7 + 3) % 50;
        int32_t labels[2] = {0, 1};
        int lm = model_cfg(m)->head == MODEL_HEAD_LM;
        model_batch b = {2, 8, ids, NULL, NULL, lm ? ids : NULL, lm ? NULL : labels, NULL};
        float loss = -1;
        lorac_rng rng; /* a classifier trains with its config's dropout */
        lorac_rng_seed(&rng, 5);
        if (!rc) rc = model_forward(m, a, &b, 0.0f, 0, &rng, &loss, NULL, &err);
        CHECK(rc == 0 && isfinite(loss) && loss > 0, "%s random forward: %s", types[i], err.msg);
        model_acts_free(a);
        a = NULL;
        if (!strcmp(types[i], "mistral"))
            CHECK(model_acts_alloc(m, 1, 9, &a, &err) == LORAC_EINVAL && strstr(err.msg, "sliding window"),
                  "mistral window: %s", err.msg);
        model_session *s = NULL;
        rc = model_session_new(m, &s, &err);
        CHECK(lm ? rc == 0 : rc == LORAC_EUNSUPPORTED, "%s session: %s", types[i], err.msg);
        model_session_free(s);
        model_acts_free(a);
        model_free(m);
    }
}

int main(void) {
    lorac_set_threads(2);
    tf5_layouts();
    tf4_layouts();
    refusals();
    windows();
    random_models();
    return check_summary();
}
