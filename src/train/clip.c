/* Gradient clipping by the global L2 norm (torch.nn.utils.clip_grad_norm_). */
#include <math.h>

#include "lorac/train.h"

// grads is (n)
float train_clip_grad_norm(float *grads, size_t n, float max_norm) {
    /* One sum of squares in double, in index order: the same bits at any thread count, and
     * more accurate than torch's float reduction (they agree to float rounding). */
    double ss = 0.0;
    for (size_t i = 0; i < n; i++) ss += (double)grads[i] * (double)grads[i];
    float norm = (float)sqrt(ss);
    if (max_norm > 0.0f) {
        float coef = max_norm / (norm + 1e-6f);
        if (coef < 1.0f)
            for (size_t i = 0; i < n; i++) grads[i] *= coef;
    }
    return norm;
}
