/* tok_chat.c — ChatML prompts (SmolLM2-Instruct's chat template), without a Jinja engine.
 *
 * lorac does not evaluate chat templates. It recognises ChatML by "<|im_start|>" in the template
 * (or, with no template, by the vocabulary having <|im_start|> and <|im_end|>) and writes the
 * format itself. SmolLM2's template adds a system message when the first message is not one:
 *   {% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are ...<|im_end|>\n' }}
 * The default system prompt is read from such a template: when it contains
 * "messages[0]['role'] != 'system'", the text between the first "<|im_start|>system" + newline (a
 * real newline or the escape \n) and the next "<|im_end|>", with the Jinja string escapes \n \t \'
 * \" \\ undone. */
#include <stdlib.h>
#include <string.h>

#include "tok/tok_internal.h"

static const char *find_n(const char *hay, size_t n, const char *needle) {
    size_t k = strlen(needle);
    for (size_t i = 0; k <= n && i <= n - k; i++)
        if (!memcmp(hay + i, needle, k)) return hay + i;
    return NULL;
}

int tok_set_chat_template(tok *t, const char *s, size_t n, lorac_err *err) {
    free(t->chat_template);
    if (!(t->chat_template = malloc(n + 1))) return lorac_fail(err, LORAC_ENOMEM, "chat template: out of memory");
    memcpy(t->chat_template, s, n);
    t->chat_template[n] = 0;
    /* the end-of-turn token the template writes is where generation stops */
    static const char *const eot[] = {"<|im_end|>", "<|eot_id|>"};
    for (size_t i = 0; i < 2; i++) {
        int32_t id = tok_find(t, eot[i]);
        if (id >= 0 && find_n(s, n, eot[i])) {
            t->eos = id;
            break;
        }
    }
    return LORAC_OK;
}

char *tok_chat_default_system(const tok *t) {
    const char *tp = t ? t->chat_template : NULL;
    if (!tp || (!strstr(tp, "messages[0]['role'] != 'system'") && !strstr(tp, "messages[0][\"role\"] != \"system\"")))
        return NULL;
    const char *p = strstr(tp, "<|im_start|>system");
    if (!p) return NULL;
    p += strlen("<|im_start|>system");
    if (*p == '\n') p++;
    else if (p[0] == '\\' && p[1] == 'n') p += 2;
    else return NULL;
    const char *end = strstr(p, "<|im_end|>");
    if (!end) return NULL;
    char *out = malloc((size_t)(end - p) + 1);
    if (!out) return NULL;
    size_t k = 0;
    for (const char *q = p; q < end; q++) {
        if (*q == '\\' && q + 1 < end && strchr("nt'\"\\", q[1])) {
            q++;
            out[k++] = *q == 'n' ? '\n' : *q == 't' ? '\t' : *q;
        } else {
            out[k++] = *q;
        }
    }
    out[k] = 0;
    return out;
}

/* Appends s to the growing string (*buf, *len, *cap). */
static int append(char **buf, size_t *len, size_t *cap, const char *s) {
    size_t n = strlen(s);
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap : 256;
        while (c < *len + n + 1) {
            if (c > SIZE_MAX / 2) return -1;
            c *= 2;
        }
        char *g = realloc(*buf, c);
        if (!g) return -1;
        *buf = g;
        *cap = c;
    }
    memcpy(*buf + *len, s, n + 1);
    *len += n;
    return 0;
}

static int append_msg(char **buf, size_t *len, size_t *cap, const char *role, const char *content) {
    return append(buf, len, cap, "<|im_start|>") || append(buf, len, cap, role) || append(buf, len, cap, "\n") ||
           append(buf, len, cap, content) || append(buf, len, cap, "<|im_end|>\n");
}

int tok_chat_format(const tok *t, const tok_chat_msg *msgs, int n, int add_generation_prompt, char **out,
                    lorac_err *err) {
    *out = NULL;
    if (!t || (n > 0 && !msgs) || n < 0) return lorac_fail(err, LORAC_EINVAL, "tok_chat_format: no tokenizer or messages");
    if (tok_find(t, "<|im_start|>") < 0 || tok_find(t, "<|im_end|>") < 0)
        return lorac_fail(err, LORAC_EUNSUPPORTED,
                          "tok_chat_format: the vocabulary has no <|im_start|>/<|im_end|> tokens; lorac formats ChatML only");
    if (t->chat_template && !strstr(t->chat_template, "<|im_start|>"))
        return lorac_fail(err, LORAC_EUNSUPPORTED, "tok_chat_format: the tokenizer's chat template is not ChatML");
    for (int i = 0; i < n; i++)
        if (!msgs[i].role || !msgs[i].content)
            return lorac_fail(err, LORAC_EINVAL, "tok_chat_format: message %d has no role or content", i);
    char *buf = NULL, *sys = NULL;
    size_t len = 0, cap = 0;
    int bad = append(&buf, &len, &cap, "");
    if (n > 0 && strcmp(msgs[0].role, "system") && (sys = tok_chat_default_system(t)))
        bad = bad || append_msg(&buf, &len, &cap, "system", sys);
    for (int i = 0; i < n && !bad; i++) bad = append_msg(&buf, &len, &cap, msgs[i].role, msgs[i].content);
    if (!bad && add_generation_prompt) bad = append(&buf, &len, &cap, "<|im_start|>assistant\n");
    free(sys);
    if (bad) {
        free(buf);
        return lorac_fail(err, LORAC_ENOMEM, "tok_chat_format: out of memory");
    }
    *out = buf;
    return LORAC_OK;
}
