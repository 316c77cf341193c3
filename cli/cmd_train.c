/* lorac train: fine-tune any family (HF directory or GGUF): a causal LM on E2E / JSONL / chat data,
 * or an encoder with a classification head on a GLUE task; LoRA, head only or full fine-tuning. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static void train_usage(FILE *f) {
    fprintf(f,
            "usage: lorac train --model DIR|FILE.gguf --data FILE --out DIR [options]\n"
            "  data: E2E lines `context||completion` or JSONL ({\"prompt\"|\"context\",\"completion\"}, {\"text\"}, or\n"
            "    {\"messages\":[{\"role\",\"content\"},...]}: the model's ChatML template, loss on assistant turns)\n"
            "  --task glue-NAME  a GLUE task (cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte) on a BERT/RoBERTa\n"
            "                  classifier: --data is the task's TSV or its folder (train.tsv; dev set evaluated)\n"
            "  --rank R  --alpha A  (GPT-2: 4, 32; Llama and BERT: 8, 16)  --lora-dropout P  --rslora  --gaussian-init\n"
            "  --targets LIST  PEFT module names as suffixes, or all-linear; GPT-2 (q,v): q, k, v, c_attn, attn.c_proj,\n"
            "                  c_fc, mlp.c_proj, c_proj, wte; Llama (q_proj,v_proj): q_proj ... down_proj, embed_tokens;\n"
            "                  BERT (query,value): query, key, value, attention.output.dense, intermediate.dense, output.dense\n"
            "  --init-adapter PATH  start from a PEFT adapter's A and B (and its saved head), or a GGUF adapter's,\n"
            "                  instead of fresh layers: the adapter gives rank, alpha and targets (--lora-dropout is the run's)\n"
            "  --head-only | --full-ft  train the classification head alone, or every weight (no LoRA)\n"
            "  --hidden-dropout P  (the model's hidden_dropout_prob; 0 for causal LMs)\n"
            "  --lr (LM 2e-4; classifier: LoRA 5e-4, head 2e-3, full 5e-5)  --warmup STEPS (LM 500) | --warmup-ratio R\n"
            "  (classifier 0.06)  --weight-decay (0.01)  --label-smoothing (LM 0.1)  --clip NORM (classifier 1)\n"
            "  --batch-size (LM 8, classifier 32)  --grad-accum (1)  --max-seq-len (LM: the model's, at most 512; classifier 128)\n"
            "  --epochs (LM 5, classifier 3) | --steps N  --max-train N  --seed (LM 110, classifier 42)  --threads N\n"
            "  --no-shuffle  file order: every epoch, batch k is examples kB+1 .. kB+B (the last may be short);\n"
            "                  --max-train N then takes the first N\n"
            "  --precision fp32|bf16|auto (auto)  frozen-weight matmuls in bf16 (fp32 accumulation) where the\n"
            "                  CPU has AVX512-BF16: about 1.7x faster steps; the adapter and its gradients stay fp32\n"
            "  --eval-data FILE  --eval-every N  --save-every N  --resume  --stop-after N (checkpoint and stop)\n"
            "  --quiet  --json (a task's final eval scores as JSON)\n"
            "  --gguf-adapter FILE.gguf  also write the adapter for llama.cpp's --lora (Llama family)\n"
            "writes DIR/{adapter_config.json, adapter_model.safetensors} (PEFT layout; with --full-ft a whole\n"
            "model directory), train_log.jsonl, loss.svg and checkpoint.safetensors (for --resume)\n"
            "data-parallel: mpirun -np N lorac train ... (lorac built with MPI): each rank trains on its share of\n"
            "  every batch (--batch-size is the global batch), --threads per rank, rank 0 writes; --resume from\n"
            "  a checkpoint of any number of ranks (README, \"Training on several processes or hosts\")\n");
}

typedef struct progress_ctx {
    int tty, quiet, announced;
} progress_ctx;

static void on_progress(void *ctx, const ft_progress *p) {
    progress_ctx *pc = ctx;
    if (pc->quiet) return;
    if (!pc->announced) { /* once training has started, so that an error stays the only line */
        char params[160];
        lora_format_trainable(params, sizeof params, p->trainable_params, p->all_params);
        fprintf(stderr, "%s\nmatmul precision: %s\n", params, cli_precision_name());
        if (p->ranks > 1)
            fprintf(stderr, "data-parallel: %d ranks x %d thread%s, %zu bytes all-reduced per step\n", p->ranks,
                    lorac_get_threads(), lorac_get_threads() == 1 ? "" : "s", p->allreduce_bytes);
        pc->announced = 1;
    }
    if (p->is_eval) {
        fprintf(stderr, "%sstep %lld: eval loss %.4f\n", pc->tty ? "\r\033[K" : "", p->step, p->eval_loss);
        return;
    }
    char line[160];
    train_progress_format(line, sizeof line, 78, p->step, p->total, p->loss, p->tokens_per_s, p->eta_s);
    if (pc->tty) {
        fprintf(stderr, "\r%s", line);
        if (p->step == p->total) fputc('\n', stderr);
    } else if (p->step == 1 || p->step == p->total || p->step % 50 == 0) {
        fprintf(stderr, "%s\n", line);
    }
}

typedef struct train_cli {
    ft_args a;
    const char *task, *precision;
    long threads;
    int json;
    progress_ctx pc;
} train_cli;

/* A flag and its value, checked where it is parsed: 1 consumed, 0 not a flag of train, -1 bad. */
static int train_flag(train_cli *t, int argc, char **argv, int *i) {
    const char *f = argv[*i];
    train_options *o = &t->a.opt;
    double d;
    long n;
#define STR(flag, dst) if (!strcmp(f, flag)) return cli_opt_str(argc, argv, i, &dst) ? -1 : 1;
#define NUM(flag, dst, ok, what) \
    if (!strcmp(f, flag)) { if (cli_opt_float(argc, argv, i, &d)) return -1; if (!(ok)) return cli_error("%s must be %s", flag, what), -1; dst = d; return 1; }
#define INT(flag, dst, ok, what) \
    if (!strcmp(f, flag)) { if (cli_opt_int(argc, argv, i, &n)) return -1; if (!(ok)) return cli_error("%s must be %s", flag, what), -1; dst = n; return 1; }
    STR("--model", t->a.model_path) STR("--data", t->a.data_path) STR("--out", t->a.out_dir) STR("--eval-data", t->a.eval_path)
    STR("--gguf-adapter", t->a.gguf_adapter) STR("--init-adapter", t->a.init_adapter) STR("--precision", t->precision) STR("--task", t->task)
    INT("--rank", o->lora.r, n >= 1, ">= 1") NUM("--alpha", o->lora.alpha, d > 0, "> 0")
    NUM("--lora-dropout", o->lora.dropout, d >= 0 && d < 1, "in [0, 1)") NUM("--hidden-dropout", o->hidden_dropout, d >= 0 && d < 1, "in [0, 1)")
    NUM("--lr", o->lr, d > 0, "> 0") NUM("--warmup-ratio", o->warmup_ratio, d >= 0 && d <= 1, "in [0, 1]")
    NUM("--weight-decay", o->weight_decay, d >= 0, ">= 0") NUM("--label-smoothing", o->label_smoothing, d >= 0 && d < 1, "in [0, 1)")
    INT("--batch-size", o->batch_size, n >= 1, ">= 1") INT("--batch", o->batch_size, n >= 1, ">= 1")
    INT("--grad-accum", o->grad_accum, n >= 1, ">= 1") INT("--max-seq-len", o->max_seq_len, n >= 2, ">= 2")
    NUM("--clip", o->max_grad_norm, d >= 0, ">= 0") INT("--epochs", o->epochs, n >= 1, ">= 1") INT("--steps", o->max_steps, n >= 1, ">= 1")
    INT("--max-train", o->max_train, n >= 1, ">= 1") INT("--seed", o->seed, 1, "") INT("--threads", t->threads, n >= 0, ">= 0")
    INT("--eval-every", o->eval_every, n >= 0, ">= 0") INT("--save-every", o->save_every, n >= 0, ">= 0")
    INT("--stop-after", t->a.stop_after, n >= 1, ">= 1")
#undef STR
#undef NUM
#undef INT
    if (!strcmp(f, "--warmup")) { /* steps given replace a task's default ratio (a classifier's 0.06) */
        if (cli_opt_int(argc, argv, i, &n)) return -1;
        if (n < 0) return cli_error("--warmup must be >= 0"), -1;
        o->warmup_steps = n, o->warmup_ratio = 0;
        return 1;
    }
    if (!strcmp(f, "--targets")) {
        const char *s;
        if (cli_opt_str(argc, argv, i, &s)) return -1;
        if (!s[0] || strlen(s) >= sizeof o->lora.targets) return cli_error("--targets: bad list \"%s\"", s), -1;
        memcpy(o->lora.targets, s, strlen(s) + 1); /* checked against the model's names once it is loaded */
        return 1;
    }
    int *flag = !strcmp(f, "--resume") ? &t->a.resume : !strcmp(f, "--rslora") ? &o->lora.use_rslora
              : !strcmp(f, "--gaussian-init") ? &o->lora.gaussian_init : !strcmp(f, "--head-only") ? &o->head_only
              : !strcmp(f, "--full-ft") ? &o->full_ft : !strcmp(f, "--no-shuffle") ? &o->no_shuffle : !strcmp(f, "--quiet") ? &t->pc.quiet : !strcmp(f, "--json") ? &t->json : NULL;
    if (flag) *flag = 1;
    return flag != NULL;
}

/* A task's dev set beside its training data, when --eval-data is not given. */
static void default_eval(train_cli *t, char *buf, size_t size) {
    struct stat st;
    if (t->a.eval_path || !t->a.task || stat(t->a.data_path, &st) || !S_ISDIR(st.st_mode)) return;
    snprintf(buf, size, "%s/%s", t->a.data_path, t->a.task->dev_file);
    if (access(buf, R_OK) == 0) t->a.eval_path = buf;
}

/* The run, in one process or as a rank of an MPI job: rank 0 reports; a failure of one rank alone
 * ends the whole job (dist_finalize), after its message. */
static int train_run(train_cli *t) {
    lorac_err err = {0};
    dist_launch dl;
    if (dist_init(&dl, &err)) return cli_fail(&err);
    if (dl.note[0]) cli_error("note: %s", dl.note);
    if (dl.idle) return 0;
    ft_eval_result ev;
    memset(&ev, 0, sizeof ev);
    t->a.progress = on_progress;
    t->a.progress_ctx = &t->pc;
    t->a.final_eval = &ev;
    int rc = ft_train(&t->a, &err), root = dist_rank() == 0;
    if (rc && (err.msg[0] || dist_size() == 1)) cli_fail(&err); /* empty: another rank spoke */
    if (!rc && root && !t->pc.quiet) fprintf(stderr, "%s written to %s\n", t->a.opt.full_ft ? "model" : "adapter", t->a.out_dir);
    if (!rc && root && t->a.task && t->a.eval_path) cli_print_glue(t->a.task, &ev, t->a.eval_path, t->json);
    fflush(stdout);
    dist_finalize(rc);
    return rc ? 1 : 0;
}

int cmd_train(int argc, char **argv) {
    train_cli t;
    memset(&t, 0, sizeof t);
    t.task = cli_task_arg(argc, argv);
    if (t.task) train_options_classifier(&t.a.opt);
    else train_options_default(&t.a.opt);
    t.precision = "auto";
    t.pc.tty = isatty(2);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            train_usage(stdout);
            return 0;
        }
        int r = train_flag(&t, argc, argv, &i);
        if (r < 0) return 2;
        if (!r) return cli_error("train: unknown option '%s' (see `lorac train --help`)", argv[i]), 2;
    }
    int steps = 0, ratio = 0;
    for (int i = 1; i < argc; i++) steps |= !strcmp(argv[i], "--warmup"), ratio |= !strcmp(argv[i], "--warmup-ratio");
    if (steps && ratio) return cli_error("train: give --warmup or --warmup-ratio, not both"), 2;
    if (!t.a.model_path || !t.a.data_path || !t.a.out_dir)
        return cli_error("train: --model, --data and --out are required (see `lorac train --help`)"), 2;
    if (cli_glue_task(t.task, &t.a.task)) return 2;
    char dev[4200];
    default_eval(&t, dev, sizeof dev);
    lorac_set_threads((int)t.threads);
    qmat_set_direct(0); /* the forward must be the function the backward differentiates: fp32 products */
    if (cli_set_precision(t.precision)) return 2;
    return train_run(&t);
}
