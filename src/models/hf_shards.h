/* hf_shards.h — a Hugging Face checkpoint's safetensors files, shared by the model families (internal). */
#ifndef LORAC_HF_SHARDS_H
#define LORAC_HF_SHARDS_H

#include "lorac/peft.h"
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

/* A PEFT adapter directory opened for loading into one model family: its config (checked for what
 * lorac's families do not support yet: bias modes, modules_to_save), its tensors, and which of them
 * the family has taken. family names the model in messages ("GPT-2", "Llama"). Config warnings
 * (unknown keys) are copied to warn, one per line, when warn is non-NULL. */
typedef struct hf_adapter {
    peft_config *pc;
    st_file f;
    int *used;      /* (f.n_tensors): set by hf_take_2d */
    char path[4200]; /* DIR/adapter_model.safetensors */
} hf_adapter;
int hf_adapter_open(const char *dir, const char *family, hf_adapter *a, char *warn, size_t warn_size, lorac_err *err);
/* Fails on the first tensor of the file that no hf_take_2d took. */
int hf_adapter_check_all_used(const hf_adapter *a, const char *family, lorac_err *err);
void hf_adapter_close(hf_adapter *a);

#endif
