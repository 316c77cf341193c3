/* lorac/finetune.h — the fine-tuning and evaluation runs behind `lorac train` and `lorac eval`, for
 * any model lm.h loads (GPT-2, Llama family from an HF directory or a GGUF): a model, a data file and
 * options in; a PEFT adapter directory, a JSONL log and a loss-curve SVG out.
 *
 * Data (by the first example of the file):
 *   E2E lines "context||completion", JSONL {"prompt"|"context","completion"} or {"text"}: the LoRA
 *     paper's recipe (train_data_build: context + eos + " " + completion + eos, loss on the
 *     completion), with the tokenizer's bos in front when it adds one;
 *   JSONL {"messages":[{"role","content"},...]}: the ChatML text of the conversation (the model's
 *     chat template, lm_chat_format), loss only on the assistant turns ("content<|im_end|>\n");
 *     needs a tokenizer with <|im_start|>/<|im_end|>. */
#ifndef LORAC_FINETUNE_H
#define LORAC_FINETUNE_H

#include "lorac/lm.h"
#include "lorac/tokenizer.h"
#include "lorac/train.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What a run reports after every optimizer step (for a progress bar). */
typedef struct ft_progress {
    long long step, total;
    double loss, lr, tokens_per_s, eta_s, elapsed_s;
    int is_eval;        /* an eval result: eval_loss is set */
    double eval_loss;
} ft_progress;

typedef struct ft_args {
    const char *model_dir;   /* an HF directory or a .gguf file */
    const char *data_path;
    const char *eval_path;   /* or NULL */
    const char *out_dir;     /* the adapter dir; also holds train_log.jsonl, loss.svg, checkpoint.safetensors */
    int resume;              /* continue from out_dir/checkpoint.safetensors */
    long long stop_after;    /* > 0: stop (with a checkpoint) after this many steps, as if interrupted */
    train_options opt;
    lm_lora_opts lora;       /* r or alpha 0, targets "": the family's default; dropout from opt.lora_dropout */
    const char *gguf_adapter; /* also write the adapter as a GGUF LoRA (llama.cpp --lora), or NULL */
    void (*progress)(void *ctx, const ft_progress *p);
    void *progress_ctx;
} ft_args;

/* Trains a LoRA adapter as described in finetune.h's header. Everything is validated (model, data,
 * options) before out_dir is created. */
int ft_train(const ft_args *a, lorac_err *err);

/* Teacher-forced evaluation: mean negative log-likelihood per scored (completion) token. */
typedef struct ft_eval_result {
    double loss;
    double ppl;
    size_t tokens;
} ft_eval_result;
int ft_eval(lm *m, const char *data_path, int batch_size, int max_seq_len, ft_eval_result *out, lorac_err *err);
/* Reads and tokenizes a data file (any format above) for model m. */
int ft_load_data(lm *m, const char *path, size_t max_len, train_data *d, lorac_err *err);

#ifdef __cplusplus
}
#endif
#endif
