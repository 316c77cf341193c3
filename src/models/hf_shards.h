/* hf_shards.h — a Hugging Face checkpoint's safetensors files, shared by the model families (internal). */
#ifndef LORAC_HF_SHARDS_H
#define LORAC_HF_SHARDS_H

#include "lorac/safetensors.h"

#define HF_MAX_SHARDS 256

typedef struct hf_shards {
    st_file *files; /* n mapped files */
    int n;
} hf_shards;

/* Opens DIR/model.safetensors, or every distinct file named by DIR/model.safetensors.index.json.
 * A directory with only pytorch_model.bin gets a message that says how to convert it. */
int hf_shards_open(const char *dir, hf_shards *s, lorac_err *err);
void hf_shards_close(hf_shards *s);
/* The tensor called name in any shard (and that shard), or NULL. */
const st_tensor *hf_shards_find(const hf_shards *s, const char *name, const st_file **file);

/* Copies the 2-D tensor name of an adapter file into dst as f32 after checking its shape (d0, d1),
 * and marks it used (used has f->n_tensors entries), so that leftover tensors can be reported. */
int hf_take_2d(const st_file *f, const char *name, int64_t d0, int64_t d1, float *dst, int *used, lorac_err *err);

#endif
