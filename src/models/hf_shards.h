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

/* A PEFT adapter being attached to one model family: which of its tensors the family has taken.
 * family names the model in messages ("GPT-2", "Llama"). Begin rejects what the families do not
 * support yet (trained biases: bias "all", or "lora_only" with bias tensors; modules_to_save). */
typedef struct hf_attach {
    const peft_adapter *a;
    const char *family;
    char src[4200];   /* DIR/adapter_model.safetensors, or "adapter" when built in memory */
    int *used;        /* (a->n) */
} hf_attach;
int hf_attach_begin(hf_attach *h, const peft_adapter *a, const char *family, lorac_err *err);
/* As hf_attach_begin, for a family that takes trained biases and modules_to_save (hf_attach_extras). */
int hf_attach_begin_extras(hf_attach *h, const peft_adapter *a, const char *family, lorac_err *err);

/* One base tensor of a model that an adapter may replace: HF name ("transformer.h.0.ln_1.bias"),
 * the model's pointer to it, and its shape (d1 = 0: 1-D). */
typedef struct hf_slot {
    char name[160];
    const float **slot;  /* an f32 tensor's pointer ... */
    struct qmat *q;      /* ... or a matrix the model may hold quantized (Llama), else NULL */
    int64_t d0, d1;
} hf_slot;
/* The adapter's non-LoRA tensors (trained biases as bias "all"/"lora_only" allows, modules_to_save
 * copies; PEFT's "<module>.base_layer.bias" read as "<module>.bias"), checked against slots (name,
 * shape, what the config allows; every tensor of a modules_to_save module present) and copied
 * into *extra (NULL when there are none; its cfg is the adapter's). Marks them taken. */
int hf_attach_extras(hf_attach *h, const hf_slot *slots, size_t n_slots, peft_adapter **extra, lorac_err *err);
/* The slot an extra tensor replaces (index into slots), or -1. */
long hf_slot_find(const hf_slot *slots, size_t n_slots, const char *peft_name);
/* Copies the 2-D tensor name (shape (d0, d1) checked) into dst and marks it taken. */
int hf_attach_take(hf_attach *h, const char *name, int64_t d0, int64_t d1, float *dst, lorac_err *err);
/* Fails on the first tensor no hf_attach_take took. */
int hf_attach_check_all_used(const hf_attach *h, lorac_err *err);
void hf_attach_end(hf_attach *h);

#endif
