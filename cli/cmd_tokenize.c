/* lorac tokenize: token ids of a text (GPT-2 files, tokenizer.json, GGUF), of its ChatML prompt, or the
 * text of ids. */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char USAGE[] =
    "usage: lorac tokenize (--model PATH | --vocab FILE --merges FILE) [--text TEXT | --file FILE]\n"
    "                      [--lines] [--special] [--no-bos] [--chat [--system TEXT]] [--decode [--skip-special]]\n"
    "Prints the token ids of the text (from --text, --file, or stdin), separated by single spaces, and a\n"
    "newline. PATH: a directory with tokenizer.json (or GPT-2's vocab.json + merges.txt / encoder.json +\n"
    "vocab.bpe), a tokenizer.json file, or a .gguf model (its tokenizer.ggml.* metadata).\n"
    "  --lines         encode each input line (without its newline) separately: one line of ids per line\n"
    "  --special       special tokens written in the text (\"<|endoftext|>\", \"<|im_start|>\") are their ids\n"
    "                  (by default they are plain text)\n"
    "  --no-bos        do not prepend the BOS token even where the tokenizer adds one (SentencePiece llama)\n"
    "  --chat          the text is a user message: print the ids of its ChatML prompt (the model's default\n"
    "                  system message if its template has one, then \"<|im_start|>assistant\\n\"); implies --special\n"
    "  --system TEXT   with --chat: this system message instead of the default\n"
    "  --decode        the input is ids (separated by spaces or newlines); prints their text exactly,\n"
    "                  followed by one newline (with --lines: each input line decoded to one output line)\n"
    "  --skip-special  with --decode: special tokens give no text\n";

typedef struct tok_opts {
    int special, bos, chat, skip_special;
    const char *system;
} tok_opts;

/* Reads all of stdin into a NUL-terminated buffer. */
static int read_stdin(char **data, size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - 1 - n, stdin);
        if (n < cap - 1) break;
        char *g = cap > SIZE_MAX / 2 ? NULL : realloc(buf, cap * 2);
        if (!g) free(buf);
        buf = g;
        cap *= 2;
    }
    if (!buf) return cli_error("tokenize: out of memory reading stdin");
    if (ferror(stdin)) {
        free(buf);
        return cli_error("tokenize: cannot read stdin");
    }
    buf[n] = 0;
    *data = buf;
    *len = n;
    return 0;
}

static int encode_print(const tok *t, const char *text, size_t len, const tok_opts *o) {
    int32_t *ids = NULL;
    size_t n = 0;
    lorac_err err = {0};
    char *prompt = NULL, *msg = NULL;
    if (o->chat) { /* the message as a C string, then its ChatML prompt */
        if (!(msg = malloc(len + 1))) return cli_error("tokenize: out of memory");
        memcpy(msg, text, len);
        msg[len] = 0;
        tok_chat_msg m[2] = {{"system", o->system}, {"user", msg}};
        int rc = tok_chat_format(t, o->system ? m : m + 1, o->system ? 2 : 1, 1, &prompt, &err);
        free(msg);
        if (rc) return cli_fail(&err);
        text = prompt;
        len = strlen(prompt);
    }
    int rc = tok_encode(t, text, len, o->bos && tok_add_bos(t), o->special || o->chat, &ids, &n, &err);
    free(prompt);
    if (rc) return cli_fail(&err);
    for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", (int)ids[i]);
    putchar('\n');
    free(ids);
    return 0;
}

static int decode_print(const tok *t, const char *text, size_t len, const tok_opts *o) {
    size_t cap = len / 2 + 1, n = 0;
    int32_t *ids = malloc(cap * sizeof *ids); /* each id takes at least 2 characters but the last */
    if (!ids) return cli_error("tokenize: out of memory");
    const char *p = text, *end = text + len;
    while (p < end) {
        if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') {
            p++;
            continue;
        }
        char *stop;
        errno = 0;
        long v = strtol(p, &stop, 10);
        if (stop == p || stop > end || errno || v < 0 || v > INT32_MAX ||
            (stop < end && *stop != ' ' && *stop != '\t' && *stop != '\n' && *stop != '\r')) {
            free(ids);
            return cli_error("tokenize: --decode: '%.*s' is not an id", (int)strcspn(p, " \t\r\n"), p);
        }
        ids[n++] = (int32_t)v;
        p = stop;
    }
    char *out = NULL;
    size_t out_len = 0;
    lorac_err err = {0};
    int rc = tok_decode(t, ids, n, o->skip_special, &out, &out_len, &err);
    free(ids);
    if (rc) return cli_fail(&err);
    fwrite(out, 1, out_len, stdout);
    putchar('\n');
    free(out);
    return 0;
}

int cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *vocab = NULL, *merges = NULL, *text = NULL, *file = NULL;
    int lines = 0, decode = 0;
    tok_opts o = {.bos = 1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(USAGE, stdout);
            return 0;
        } else if (!strcmp(a, "--model")) {
            if (cli_opt_str(argc, argv, &i, &model)) return 1;
        } else if (!strcmp(a, "--vocab")) {
            if (cli_opt_str(argc, argv, &i, &vocab)) return 1;
        } else if (!strcmp(a, "--merges")) {
            if (cli_opt_str(argc, argv, &i, &merges)) return 1;
        } else if (!strcmp(a, "--text")) {
            if (cli_opt_str(argc, argv, &i, &text)) return 1;
        } else if (!strcmp(a, "--file")) {
            if (cli_opt_str(argc, argv, &i, &file)) return 1;
        } else if (!strcmp(a, "--lines")) {
            lines = 1;
        } else if (!strcmp(a, "--special")) {
            o.special = 1;
        } else if (!strcmp(a, "--no-bos")) {
            o.bos = 0;
        } else if (!strcmp(a, "--chat")) {
            o.chat = 1;
        } else if (!strcmp(a, "--system")) {
            if (cli_opt_str(argc, argv, &i, &o.system)) return 1;
        } else if (!strcmp(a, "--skip-special")) {
            o.skip_special = 1;
        } else if (!strcmp(a, "--decode")) {
            decode = 1;
        } else {
            return cli_error("tokenize: unknown argument '%s' (try `lorac tokenize --help`)", a);
        }
    }
    if (!model == !(vocab || merges) || (!model && !(vocab && merges)))
        return cli_error("tokenize: give --model DIR, or both --vocab FILE and --merges FILE");
    if (text && file) return cli_error("tokenize: give --text or --file, not both");
    if (o.chat && decode) return cli_error("tokenize: --chat and --decode do not go together");
    if (o.system && !o.chat) return cli_error("tokenize: --system needs --chat");

    tok *t = NULL;
    lorac_err err = {0};
    if ((model ? tok_load(model, &t, &err) : tok_load_gpt2_files(vocab, merges, &t, &err))) return cli_fail(&err);
    char *data = NULL;
    size_t len = 0;
    int rc = 0;
    if (text) {
        len = strlen(text);
    } else if (file) {
        if (lorac_read_file(file, &data, &len, &err)) rc = cli_fail(&err);
    } else {
        rc = read_stdin(&data, &len);
    }
    const char *in = text ? text : data;
    if (!rc && !lines) {
        rc = decode ? decode_print(t, in, len, &o) : encode_print(t, in, len, &o);
    } else if (!rc) {
        for (size_t pos = 0; pos < len && !rc;) {
            const char *nl = memchr(in + pos, '\n', len - pos);
            size_t n = nl ? (size_t)(nl - (in + pos)) : len - pos;
            rc = decode ? decode_print(t, in + pos, n, &o) : encode_print(t, in + pos, n, &o);
            pos += n + 1;
        }
    }
    if (!rc && (fflush(stdout) || ferror(stdout))) rc = cli_error("tokenize: cannot write to stdout");
    free(data);
    tok_free(t);
    return rc;
}
