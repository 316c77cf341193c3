/* lorac train: fine-tune a LoRA adapter on a GPT-2 or Llama-family checkpoint (HF directory or GGUF). */
#include <string.h>
#include <unistd.h>

#include "cli.h"

static void train_usage(FILE *f) {
    fprintf(f,
            "usage: lorac train --model DIR|FILE.gguf --data FILE --out ADAPTER_DIR [options]\n"
            "  data: E2E lines `context||completion` or JSONL ({\"prompt\"|\"context\",\"completion\"}, {\"text\"}, or\n"
            "    {\"messages\":[{\"role\",\"content\"},...]}: the model's ChatML template, loss on assistant turns)\n"
            "  --rank R  --alpha A  (GPT-2: 4, 32; Llama: 8, 16)  --lora-dropout P (0.1)  --rslora  --gaussian-init\n"
            "  --targets LIST  GPT-2 (q,v): q, k, v, c_attn, attn.c_proj, c_fc, mlp.c_proj, c_proj, all-linear;\n"
            "                  Llama (q_proj,v_proj): q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, all-linear\n"
            "  --lr (2e-4)  --warmup STEPS (500)  --weight-decay (0.01)  --label-smoothing (0.1)\n"
            "  --batch-size (8)  --grad-accum (1)  --max-seq-len (512)  --clip NORM (0 = off)\n"
            "  --epochs (5) | --steps N  --seed (110)  --threads N (all cores)\n"
            "  --precision fp32|bf16|auto (auto)  frozen-weight matmuls in bf16 (fp32 accumulation) where the\n"
            "                  CPU has AVX512-BF16: about 1.7x faster steps; the adapter and its gradients stay fp32\n"
            "  --eval-data FILE  --eval-every N  --save-every N  --resume  --stop-after N (checkpoint and stop)  --quiet\n"
            "  --gguf-adapter FILE.gguf  also write the adapter for llama.cpp's --lora (Llama family)\n"
            "writes ADAPTER_DIR/{adapter_config.json, adapter_model.safetensors} (PEFT layout),\n"
            "train_log.jsonl, loss.svg and checkpoint.safetensors (for --resume)\n");
}

typedef struct progress_ctx {
    int tty, quiet, announced;
} progress_ctx;

static void on_progress(void *ctx, const ft_progress *p) {
    progress_ctx *pc = ctx;
    if (pc->quiet) return;
    if (!pc->announced) { /* once training has started, so that an error stays the only line */
        fprintf(stderr, "matmul precision: %s\n", cli_precision_name());
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

int cmd_train(int argc, char **argv) {
    if (cli_is_glue_task(argc, argv)) return cmd_train_glue(argc, argv);
    ft_args a;
    memset(&a, 0, sizeof a);
    train_options_default(&a.opt);
    long threads = 0;
    const char *precision = "auto";
    progress_ctx pc = {isatty(2), 0, 0};
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        double d;
        long n;
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            train_usage(stdout);
            return 0;
        }
#define STR(flag, dst) else if (!strcmp(f, flag)) { if (cli_opt_str(argc, argv, &i, &dst)) return 2; }
#define NUM(flag, dst) else if (!strcmp(f, flag)) { if (cli_opt_float(argc, argv, &i, &d)) return 2; dst = d; }
#define INT(flag, dst) else if (!strcmp(f, flag)) { if (cli_opt_int(argc, argv, &i, &n)) return 2; dst = n; }
        STR("--model", a.model_dir)
        STR("--data", a.data_path)
        STR("--out", a.out_dir)
        STR("--eval-data", a.eval_path)
        STR("--gguf-adapter", a.gguf_adapter)
        STR("--precision", precision)
        INT("--rank", a.lora.r)
        NUM("--alpha", a.lora.alpha)
        NUM("--lora-dropout", a.opt.lora_dropout)
        NUM("--lr", a.opt.lr)
        INT("--warmup", a.opt.warmup_steps)
        NUM("--weight-decay", a.opt.weight_decay)
        NUM("--label-smoothing", a.opt.label_smoothing)
        INT("--batch-size", a.opt.batch_size)
        INT("--grad-accum", a.opt.grad_accum)
        INT("--max-seq-len", a.opt.max_seq_len)
        NUM("--clip", a.opt.max_grad_norm)
        INT("--epochs", a.opt.epochs)
        INT("--steps", a.opt.max_steps)
        INT("--seed", a.opt.seed)
        INT("--threads", threads)
        INT("--eval-every", a.opt.eval_every)
        INT("--save-every", a.opt.save_every)
        INT("--stop-after", a.stop_after)
#undef STR
#undef NUM
#undef INT
        else if (!strcmp(f, "--targets")) {
            const char *t;
            if (cli_opt_str(argc, argv, &i, &t)) return 2;
            if (!t[0] || strlen(t) >= sizeof a.lora.targets) return cli_error("--targets: bad list \"%s\"", t);
            memcpy(a.lora.targets, t, strlen(t) + 1); /* checked against the model's names once it is loaded */
        } else if (!strcmp(f, "--resume")) a.resume = 1;
        else if (!strcmp(f, "--rslora")) a.lora.use_rslora = 1;
        else if (!strcmp(f, "--gaussian-init")) a.lora.gaussian_init = 1;
        else if (!strcmp(f, "--quiet")) pc.quiet = 1;
        else {
            cli_error("train: unknown option '%s' (see `lorac train --help`)", f);
            return 2;
        }
    }
    if (!a.model_dir || !a.data_path || !a.out_dir) {
        cli_error("train: --model, --data and --out are required (see `lorac train --help`)");
        return 2;
    }
    if (threads < 0) return cli_error("--threads must be >= 0");
    lorac_set_threads((int)threads);
    if (cli_set_precision(precision)) return 2;
    a.progress = on_progress;
    a.progress_ctx = &pc;
    lorac_err err = {0};
    if (ft_train(&a, &err)) return cli_fail(&err);
    if (!pc.quiet) fprintf(stderr, "adapter written to %s\n", a.out_dir);
    return 0;
}
