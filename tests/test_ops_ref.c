/* test_ops_ref.c — core ops against PyTorch on the definitions that differ between frameworks.
 * Fixtures: the .bin files in tests/fixtures/ops from tools/ops_ref.py (raw little-endian f32 arrays, shapes
 * fixed in both files). Tolerance: float against torch's float, 1e-6 abs + 1e-5 rel, looser
 * (1e-5 abs) only where torch rounds differently on purpose: rope's angles are float32 products in
 * HF but double in lorac, and attention gradients sum a few more float products.
 */
#include "lorac/ops.h"

#include <stdlib.h>
#include <string.h>

#include "check.h"

/* Reads fixtures/ops/NAME, which must hold exactly n floats. NULL (and a FAIL) otherwise. */
static float *load(const char *name, size_t n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/fixtures/ops/%s", LORAC_SOURCE_DIR, name);
    char *data = NULL;
    size_t len = 0;
    lorac_err err = {0};
    if (lorac_read_file(path, &data, &len, &err) != LORAC_OK) {
        CHECK(0, "%s", err.msg);
        return NULL;
    }
    if (len != n * sizeof(float)) {
        CHECK(0, "%s: %zu bytes, want %zu", path, len, n * sizeof(float));
        free(data);
        return NULL;
    }
    float *x = malloc(n * sizeof(float));
    memcpy(x, data, n * sizeof(float)); /* the host is little-endian (x86-64, aarch64) */
    free(data);
    return x;
}

static void test_act(void) {
    const size_t n = 64;
    float *f = load("act.bin", 4 * n), y[64];
    if (!f) return;
    op_gelu_tanh_forward(y, f, n);
    check_arrays_close(y, f + n, n, 1e-6, 1e-5, "gelu_new (tanh) vs torch");
    op_gelu_erf_forward(y, f, n);
    check_arrays_close(y, f + 2 * n, n, 1e-6, 1e-5, "gelu (erf) vs torch F.gelu");
    op_silu_forward(y, f, n);
    check_arrays_close(y, f + 3 * n, n, 1e-6, 1e-5, "silu vs torch");
    free(f);
}

static void test_norm(void) {
    enum { N = 3, C = 16 };
    float *f = load("norm.bin", 3 * N * C + 3 * C);
    if (!f) return;
    const float *x = f, *gamma = x + N * C, *beta = gamma + C, *ln = beta + C, *w = ln + N * C,
                *rms = w + C;
    float y[N * C], mean[N], rstd[N];
    op_layernorm_forward(y, mean, rstd, x, gamma, beta, N, C, 1e-5f);
    check_arrays_close(y, ln, N * C, 1e-6, 1e-5, "layernorm (eps 1e-5) vs torch");
    float again[N * C];
    op_norm_apply(again, x, mean, rstd, gamma, beta, N, C);
    CHECK(!memcmp(again, y, sizeof y), "op_norm_apply gives layernorm's bits from its statistics");
    op_rmsnorm_forward(y, rstd, x, w, N, C, 1e-6f);
    check_arrays_close(y, rms, N * C, 1e-6, 1e-5, "rmsnorm (eps 1e-6) vs LlamaRMSNorm");
    op_norm_apply(again, x, NULL, rstd, w, NULL, N, C);
    CHECK(!memcmp(again, y, sizeof y), "op_norm_apply gives rmsnorm's bits from its statistics");
    free(f);
}

static void test_softmax(void) {
    enum { N = 3, C = 10 };
    float *f = load("softmax.bin", 2 * N * C), y[N * C];
    if (!f) return;
    op_softmax_forward(y, f, N, C);
    check_arrays_close(y, f + N * C, N * C, 1e-7, 1e-5, "softmax vs torch");
    free(f);
}

static void test_ce(void) {
    enum { N = 6, V = 13 };
    float *f = load("ce.bin", N * V + N + N + 1 + N * V);
    if (!f) return;
    const float *logits = f, *tf = f + N * V, *rows = tf + N, *mean = rows + N, *dlogits = mean + 1;
    int targets[N];
    for (int n = 0; n < N; n++) targets[n] = (int)tf[n];
    float losses[N], lse[N], dl[N], g[N * V] = {0}, z[N * V];
    float m = op_crossentropy_forward(losses, lse, logits, targets, N, V, 0.1f);
    check_arrays_close(losses, rows, N, 1e-6, 1e-5, "cross-entropy rows (ls 0.1, ignore -100) vs torch");
    CHECK_CLOSE(m, mean[0], 1e-6, 1e-5, "cross-entropy mean vs torch");
    int cnt = op_crossentropy_count(targets, N);
    CHECK(cnt == 4, "count %d", cnt);
    for (int n = 0; n < N; n++) dl[n] = 1.0f / cnt;
    op_crossentropy_backward(g, dl, logits, lse, targets, N, V, 0.1f);
    check_arrays_close(g, dlogits, N * V, 1e-7, 1e-5, "cross-entropy dlogits vs torch autograd");
    memcpy(z, logits, sizeof z);
    float fm = op_crossentropy_fused(z, losses, targets, N, V, 0.1f, 1.0f / cnt);
    CHECK_CLOSE(fm, mean[0], 1e-6, 1e-5, "fused cross-entropy mean vs torch");
    check_arrays_close(z, dlogits, N * V, 1e-7, 1e-5, "fused cross-entropy dlogits vs torch");
    free(f);
}

static void test_attention(void) {
    enum { B = 2, T = 5, NH = 4, NKV = 2, HS = 8, NQ = B * T * NH * HS, NK = B * T * NKV * HS };
    float *f = load("attn.bin", NQ + 2 * NK + B * T + NQ * 4 + 2 * NK);
    if (!f) return;
    const float *q = f, *k = q + NQ, *v = k + NK, *mf = v + NK, *R = mf + B * T, *out_c = R + NQ,
                *out_b = out_c + NQ, *dq_ref = out_b + NQ, *dk_ref = dq_ref + NQ, *dv_ref = dk_ref + NK;
    uint8_t mask[B * T];
    for (int i = 0; i < B * T; i++) mask[i] = mf[i] != 0.0f;
    static float out[NQ], lse[B * NH * T], dq[NQ], dk[NK], dv[NK];
    op_attention_forward(out, lse, q, k, v, mask, B, T, NH, NKV, HS, 0);
    check_arrays_close(out, out_b, NQ, 1e-6, 1e-5, "bidirectional gqa attention with padding vs torch");
    op_attention_forward(out, lse, q, k, v, mask, B, T, NH, NKV, HS, 1);
    check_arrays_close(out, out_c, NQ, 1e-6, 1e-5, "causal gqa attention with padding vs torch");
    op_attention_backward(dq, dk, dv, R, out, lse, q, k, v, mask, B, T, NH, NKV, HS, 1);
    check_arrays_close(dq, dq_ref, NQ, 1e-5, 1e-5, "attention dq vs torch autograd");
    check_arrays_close(dk, dk_ref, NK, 1e-5, 1e-5, "attention dk vs torch autograd");
    check_arrays_close(dv, dv_ref, NK, 1e-5, 1e-5, "attention dv vs torch autograd");
    free(f);
}

/* T = 130 spans three 64-key tiles of the tiled attention (the last partial); batch row 1 is
 * padded on its first 70 keys, a whole tile (causal rows before 70 see nothing). Same tolerances. */
static void test_attention_long(void) {
    enum { B = 2, T = 130, NH = 2, NKV = 1, HS = 8, NQ = B * T * NH * HS, NK = B * T * NKV * HS };
    float *f = load("attn_long.bin", NQ + 2 * NK + B * T + NQ * 4 + 2 * NK);
    if (!f) return;
    const float *q = f, *k = q + NQ, *v = k + NK, *mf = v + NK, *R = mf + B * T, *out_c = R + NQ,
                *out_b = out_c + NQ, *dq_ref = out_b + NQ, *dk_ref = dq_ref + NQ, *dv_ref = dk_ref + NK;
    uint8_t mask[B * T];
    for (int i = 0; i < B * T; i++) mask[i] = mf[i] != 0.0f;
    static float out[NQ], lse[B * NH * T], dq[NQ], dk[NK], dv[NK];
    op_attention_forward(out, lse, q, k, v, mask, B, T, NH, NKV, HS, 0);
    check_arrays_close(out, out_b, NQ, 1e-6, 1e-5, "long bidirectional attention with padding vs torch");
    op_attention_forward(out, lse, q, k, v, mask, B, T, NH, NKV, HS, 1);
    check_arrays_close(out, out_c, NQ, 1e-6, 1e-5, "long causal attention with padding vs torch");
    op_attention_backward(dq, dk, dv, R, out, lse, q, k, v, mask, B, T, NH, NKV, HS, 1);
    check_arrays_close(dq, dq_ref, NQ, 1e-5, 1e-5, "long attention dq vs torch autograd");
    check_arrays_close(dk, dk_ref, NK, 1e-5, 1e-5, "long attention dk vs torch autograd");
    check_arrays_close(dv, dv_ref, NK, 1e-5, 1e-5, "long attention dv vs torch autograd");
    free(f);
}

static void test_rope(void) {
    enum { B = 2, T = 4, NH = 2, HS = 8, NX = B * T * NH * HS };
    float *f = load("rope.bin", 2 * NX + B * T);
    if (!f) return;
    int pos[B * T];
    for (int i = 0; i < B * T; i++) pos[i] = (int)f[NX + i];
    float y[NX];
    op_rope_forward(y, f, pos, B, T, NH, HS, 10000.0f);
    check_arrays_close(y, f + NX + B * T, NX, 1e-5, 1e-5, "rope (rotate-half) vs HF Llama");
    free(f);
}

int main(void) {
    test_act();
    test_norm();
    test_softmax();
    test_ce();
    test_attention();
    test_attention_long();
    test_rope();
    return check_summary();
}
