/* lorac/finetune.h — the GPT-2 fine-tuning and evaluation runs behind `lorac train` and `lorac eval`:
 * a model directory, a data file and options in; a PEFT adapter directory, a JSONL log and a
 * loss-curve SVG out. */
#ifndef LORAC_FINETUNE_H
#define LORAC_FINETUNE_H

#include "lorac/gpt2.h"
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
    const char *model_dir;
    const char *data_path;
    const char *eval_path;   /* or NULL */
    const char *out_dir;     /* the adapter dir; also holds train_log.jsonl, loss.svg, checkpoint.safetensors */
    int resume;              /* continue from out_dir/checkpoint.safetensors */
    long long stop_after;    /* > 0: stop (with a checkpoint) after this many steps, as if interrupted */
    train_options opt;
    gpt2_lora_opts lora;     /* lora.dropout is taken from opt.lora_dropout */
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
int ft_eval(gpt2_model *m, const bpe_tokenizer *tok, const char *data_path, int batch_size, int max_seq_len,
            ft_eval_result *out, lorac_err *err);

#ifdef __cplusplus
}
#endif
#endif
