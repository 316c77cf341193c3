/* lorac/finetune.h — one trainer for every family and task, behind `lorac train` and `lorac eval`:
 * a model (HF directory or GGUF), a data file and options in; a PEFT adapter directory (or, fully
 * fine-tuned, a model directory), a JSONL log, a loss-curve SVG and a resumable checkpoint out.
 *
 * The task decides the data, the loss and the metrics:
 *   causal LM (no task): by the first example of the file,
 *     E2E lines "context||completion", JSONL {"prompt"|"context","completion"} or {"text"}: the LoRA
 *       paper's recipe (train_data_build: context + eos + " " + completion + eos, loss on the
 *       completion), with the tokenizer's bos in front when it adds one;
 *     JSONL {"messages":[{"role","content"},...]}: the ChatML text of the conversation (the model's
 *       chat template), loss only on the assistant turns ("content<|im_end|>\n");
 *     cross-entropy per scored token (label smoothing), evaluated as loss and perplexity;
 *   a GLUE task (lorac/glue.h) on an encoder with a classification head: sentence(-pair) examples,
 *     cross-entropy (MSE for STS-B) per example, evaluated with the task's metrics.
 * Either way: LoRA (with the head trained, as PEFT's modules_to_save), head only, or full
 * fine-tuning; AdamW over one flat buffer (weight decay on matrices only, as HF Trainer's default),
 * clipping, linear warm-up/decay, gradient accumulation, bit-exact resume. */
#ifndef LORAC_FINETUNE_H
#define LORAC_FINETUNE_H

#include "lorac/glue.h"
#include "lorac/model.h"
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
    size_t trainable_params, all_params; /* model_count_params, for PEFT's trainable-parameters line */
    int ranks;             /* processes of a data-parallel run (lorac/dist.h); 1 alone */
    size_t allreduce_bytes; /* summed over the ranks each step (gradients, loss, tokens); 0 alone */
} ft_progress;

/* Teacher-forced evaluation: an LM's mean negative log-likelihood per scored token (and its
 * perplexity); a classifier's mean loss per example and the task's metrics. */
typedef struct ft_eval_result {
    double loss;
    double ppl;          /* LM */
    size_t tokens;       /* LM: scored tokens; classifier: examples */
    glue_scores scores;  /* classifier */
    double seconds;      /* the evaluation's wall time */
} ft_eval_result;

typedef struct ft_args {
    const char *model_path;  /* an HF directory or a .gguf file */
    const char *data_path;   /* a data file (a GLUE task: its TSV, or the task's folder with train.tsv) */
    const char *eval_path;   /* or NULL */
    const char *out_dir;     /* the adapter (or model) dir; also train_log.jsonl, loss.svg, checkpoint.safetensors */
    const glue_task *task;   /* NULL: a causal LM */
    int resume;              /* continue from out_dir/checkpoint.safetensors */
    long long stop_after;    /* > 0: stop (with a checkpoint) after this many steps, as if interrupted */
    train_options opt;
    const char *gguf_adapter; /* also write the adapter as a GGUF LoRA (llama.cpp --lora), or NULL */
    const char *init_adapter; /* start from this adapter's LoRA A, B (and saved head), or NULL: fresh layers; a PEFT
                               * directory or a GGUF adapter (model_adapter_read). It gives rank, alpha, targets and rsLoRA (opt.lora
                               * must leave them unset); opt.lora.dropout is the run's */
    void (*progress)(void *ctx, const ft_progress *p);
    void *progress_ctx;
    ft_eval_result *final_eval; /* when non-NULL and eval_path is given: the last evaluation */
} ft_args;

/* Trains as described above. Everything is validated (model, data, options) before out_dir is
 * created. */
int ft_train(const ft_args *a, lorac_err *err);

/* Evaluates m on a data file of the task (NULL: causal LM) in batches of `batch` rows of up to
 * max_seq_len tokens (0: as ft_train's default); max_examples > 0 takes the first ones only. */
int ft_eval(model *m, const glue_task *task, const char *path, int batch, int max_seq_len, long long max_examples,
            ft_eval_result *out, lorac_err *err);
/* Reads and tokenizes a data file of the task for model m into sequences of up to max_len tokens. */
int ft_load_data(model *m, const glue_task *task, const char *path, size_t max_len, train_data *d, lorac_err *err);

#ifdef __cplusplus
}
#endif
#endif
