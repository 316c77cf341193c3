/* lorac/ops_rope.h — rotary position embedding with caller-given frequencies.
 *
 * op_rope_forward (ops.h) derives its frequencies from theta alone. Scaled variants (linear
 * position interpolation, Llama 3.1's frequency-dependent "llama3" scaling) change the
 * frequency of each pair, so these take the per-pair inverse frequencies precomputed (HS/2 floats,
 * HF's inv_freq). Same rotate-half convention as op_rope_forward:
 *   angle = pos · inv_freq[i] (a float product, as transformers computes it), cos/sin in double,
 *   out[i] = x[i]·cos - x[i+HS/2]·sin,  out[i+HS/2] = x[i+HS/2]·cos + x[i]·sin.
 */
#ifndef LORAC_OPS_ROPE_H
#define LORAC_OPS_ROPE_H

#ifdef __cplusplus
extern "C" {
#endif

/* How a model's rotary frequencies are made (HF's rope_theta and rope_scaling / rope_parameters). */
typedef enum rope_scaling {
    ROPE_SCALING_NONE = 0,   /* 1 / theta^(2i/HS) */
    ROPE_SCALING_LINEAR = 1, /* position interpolation: every frequency divided by factor */
    ROPE_SCALING_LLAMA3 = 2, /* Llama 3.1: long wavelengths slowed by factor, short kept, a smooth band between */
} rope_scaling;
typedef struct rope_params {
    double theta;
    rope_scaling scaling;
    double factor;                        /* linear and llama3 */
    double low_freq_factor, high_freq_factor;
    int original_max_positions;           /* llama3 */
} rope_params;

/* HF's inv_freq for p: HS/2 floats, computed as transformers does (float32 after a double power). */
void op_rope_inv_freq(const rope_params *p, int HS, float *inv_freq);

/* inp, out (B,T,NH·HS), HS even; out may equal inp. pos (B,T) is each token's position, or NULL
 * for pos0 + t in every row (pos0 lets a KV-cache step continue at its offset). */
void op_rope_freqs_forward(float *out, const float *inp, const int *pos, int pos0, int B, int T, int NH,
                           int HS, const float *inv_freq);
/* dinp (B,T,NH·HS) += the inverse rotation of dout; dinp must not alias dout. */
void op_rope_freqs_backward(float *dinp, const float *dout, const int *pos, int pos0, int B, int T, int NH,
                            int HS, const float *inv_freq);

#ifdef __cplusplus
}
#endif
#endif
