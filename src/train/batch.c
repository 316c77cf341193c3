/* Micro-batches: a seeded Fisher-Yates shuffle per epoch (or file or length order), rows padded on
 * the right. */
#include <stdlib.h>
#include <string.h>

#include "lorac/train.h"

int train_batch_init(train_batch *bt, int B, size_t max_T, lorac_err *err) {
    memset(bt, 0, sizeof *bt);
    size_t bt_n;
    if (B < 1 || max_T < 1) return lorac_fail(err, LORAC_EINVAL, "batch: B and T must be >= 1");
    if (lorac_size_mul((size_t)B, max_T, &bt_n) || bt_n > SIZE_MAX / sizeof(int32_t))
        return lorac_fail(err, LORAC_ENOMEM, "batch: %d x %zu tokens overflow", B, max_T);
    bt->ids = malloc(bt_n * sizeof(int32_t));
    bt->targets = malloc(bt_n * sizeof(int32_t));
    bt->mask = malloc(bt_n);
    bt->type_ids = malloc(bt_n * sizeof(int32_t));
    bt->labels = malloc((size_t)B * sizeof(int32_t));
    bt->scores = malloc((size_t)B * sizeof(float));
    bt->lens = malloc((size_t)B * sizeof(int32_t));
    bt->index = malloc((size_t)B * sizeof(size_t));
    if (!bt->ids || !bt->targets || !bt->mask || !bt->type_ids || !bt->labels || !bt->scores || !bt->lens || !bt->index) {
        train_batch_free(bt);
        return lorac_fail(err, LORAC_ENOMEM, "batch: out of memory for %d x %zu tokens", B, max_T);
    }
    bt->cap_B = B;
    bt->cap_T = max_T;
    return LORAC_OK;
}

void train_batch_free(train_batch *bt) {
    free(bt->ids);
    free(bt->targets);
    free(bt->mask);
    free(bt->type_ids);
    free(bt->labels);
    free(bt->scores);
    free(bt->lens);
    free(bt->index);
    memset(bt, 0, sizeof *bt);
}

int train_batcher_init(train_batcher *b, const train_data *d, int batch_size, int drop_last,
                       int shuffle, uint64_t seed, lorac_err *err) {
    memset(b, 0, sizeof *b);
    if (batch_size < 1) return lorac_fail(err, LORAC_EINVAL, "--batch-size must be >= 1");
    if (d->n == 0) return lorac_fail(err, LORAC_EINVAL, "batcher: no sequences");
    size_t nb = drop_last ? d->n / (size_t)batch_size : (d->n + (size_t)batch_size - 1) / (size_t)batch_size;
    if (nb == 0)
        return lorac_fail(err, LORAC_EINVAL, "%zu sequences are fewer than one batch of %d (--batch-size)",
                          d->n, batch_size);
    b->order = malloc(d->n * sizeof *b->order);
    if (!b->order) return lorac_fail(err, LORAC_ENOMEM, "batcher: out of memory");
    b->data = d;
    b->batch_size = batch_size;
    b->drop_last = drop_last;
    b->shuffle = shuffle;
    b->seed = seed;
    b->n_batches = nb;
    b->order_epoch = -1;
    return LORAC_OK;
}

void train_batcher_free(train_batcher *b) {
    free(b->order);
    memset(b, 0, sizeof *b);
}

int train_batcher_seek(train_batcher *b, long long epoch, size_t batch, lorac_err *err) {
    if (epoch < 0 || batch >= b->n_batches)
        return lorac_fail(err, LORAC_EINVAL, "batcher: position (epoch %lld, batch %zu) is outside the data "
                          "(%zu batches per epoch)", epoch, batch, b->n_batches);
    b->epoch = epoch;
    b->batch = batch;
    return LORAC_OK;
}

/* Uniform integer in [0, bound), without modulo bias (rejects the short top range). */
static uint64_t rng_below(lorac_rng *r, uint64_t bound) {
    uint64_t threshold = (0 - bound) % bound;
    for (;;) {
        uint64_t x = lorac_rng_u64(r);
        if (x >= threshold) return x % bound;
    }
}

/* Longest first, ties in file order: a stable counting sort on the lengths (<= max_len). */
static int order_by_length(train_batcher *b, lorac_err *err) {
    const train_data *d = b->data;
    size_t *start = calloc(d->max_len + 2, sizeof *start);
    if (!start) return lorac_fail(err, LORAC_ENOMEM, "batcher: out of memory");
    for (size_t s = 0; s < d->n; s++) start[d->max_len - (d->off[s + 1] - d->off[s]) + 1]++;
    for (size_t k = 1; k <= d->max_len + 1; k++) start[k] += start[k - 1];
    for (size_t s = 0; s < d->n; s++) b->order[start[d->max_len - (d->off[s + 1] - d->off[s])]++] = s;
    free(start);
    return LORAC_OK;
}

/* The visiting order of epoch e: identity, by length, or a Fisher-Yates permutation seeded by
 * (seed, e) only, so any epoch can be drawn without replaying the ones before it. */
static int draw_order(train_batcher *b, long long epoch, lorac_err *err) {
    size_t n = b->data->n;
    b->order_epoch = epoch;
    if (b->shuffle == TRAIN_ORDER_LENGTH) return order_by_length(b, err);
    for (size_t i = 0; i < n; i++) b->order[i] = i;
    if (b->shuffle == TRAIN_ORDER_SHUFFLE) {
        lorac_rng r;
        lorac_rng_seed(&r, b->seed ^ (0x9E3779B97F4A7C15ULL * (uint64_t)(epoch + 1)));
        for (size_t i = n - 1; i > 0; i--) {
            size_t j = (size_t)rng_below(&r, (uint64_t)i + 1);
            size_t t = b->order[i];
            b->order[i] = b->order[j];
            b->order[j] = t;
        }
    }
    return LORAC_OK;
}

// out: ids, targets, mask are (B,T); lens, index are (B)
int train_batcher_next(train_batcher *b, train_batch *out, lorac_err *err) {
    const train_data *d = b->data;
    if (!out->ids || out->cap_B < 1)
        return lorac_fail(err, LORAC_EINVAL, "batcher: the batch was not initialised");
    if (b->order_epoch != b->epoch) {
        int rc = draw_order(b, b->epoch, err);
        if (rc) return rc;
    }
    size_t start = b->batch * (size_t)b->batch_size;
    size_t rows = d->n - start < (size_t)b->batch_size ? d->n - start : (size_t)b->batch_size;
    size_t T = 0;
    for (size_t r = 0; r < rows; r++) {
        size_t s = b->order[start + r];
        size_t len = d->off[s + 1] - d->off[s];
        if (len > T) T = len;
    }
    if (rows > (size_t)out->cap_B || T > out->cap_T || T > (size_t)INT32_MAX)
        return lorac_fail(err, LORAC_EINVAL, "batcher: a batch of %zu x %zu tokens does not fit in %d x %zu",
                          rows, T, out->cap_B, out->cap_T);
    for (size_t r = 0; r < rows; r++) {
        size_t s = b->order[start + r];
        size_t o = d->off[s], len = d->off[s + 1] - o;
        int32_t *ids = out->ids + r * T, *tg = out->targets + r * T;
        uint8_t *mk = out->mask + r * T;
        int32_t *ty = out->type_ids + r * T;
        memcpy(ids, d->ids + o, len * sizeof *ids);
        memcpy(tg, d->targets + o, len * sizeof *tg);
        memset(mk, 1, len);
        if (d->type_ids) memcpy(ty, d->type_ids + o, len * sizeof *ty);
        else memset(ty, 0, len * sizeof *ty);
        for (size_t t = len; t < T; t++) {
            ids[t] = d->pad_id;
            tg[t] = TRAIN_IGNORE;
            mk[t] = 0;
            ty[t] = 0;
        }
        if (d->labels) out->labels[r] = d->labels[s];
        if (d->scores) out->scores[r] = d->scores[s];
        out->lens[r] = (int32_t)len;
        out->index[r] = s;
    }
    out->epoch = b->epoch;
    out->batch = b->batch;
    out->B = (int)rows;
    out->T = (int)T;
    out->n_tokens = 0;
    out->n_targets = 0;
    for (size_t r = 0; r < rows; r++) {
        out->n_tokens += (size_t)out->lens[r];
        for (size_t t = 0; t < T; t++) out->n_targets += out->targets[r * T + t] != TRAIN_IGNORE;
    }
    if (++b->batch == b->n_batches) {
        b->batch = 0;
        b->epoch++;
    }
    return LORAC_OK;
}
