/* pretok_llama3.c — Llama 3's pre-tokenizer (and Qwen2's, which differs only in single digits) as a
 * hand-written scanner.
 *
 * Llama 3 (tokenizer.json Split pattern; llama.cpp's "llama3"/"llama-bpe") splits text with
 *   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * (Qwen2: \p{N} instead of \p{N}{1,3}). At each position the first alternative that matches wins:
 *   - an ASCII apostrophe and s t m d re ve ll in either case is a contraction;
 *   - a run of letters, optionally led by ONE character that is not CR, LF, a letter or a number
 *     (a space, a tab, punctuation: " word", "(word", "\tword");
 *   - 1..max_digits numbers;
 *   - a run of "other" characters optionally led by one U+0020, then any CRs and LFs after it;
 *   - whitespace holding CR or LF: up to and including its last CR/LF;
 *   - other whitespace: as in GPT-2 (the whole run at the end of the text, else all but its last
 *     character, a lone character by itself).
 * Classes and ill-formed UTF-8 are as in pretok_gpt2.c. The case-insensitive match is ASCII only
 * (the regex engines would also fold U+017F LATIN SMALL LETTER LONG S to s; lorac does not).
 */
#include "tok/tok_internal.h"

/* Class of the character at s[pos] (pos < n); *len gets its length and *cp the code point. */
static int class_at(const uint8_t *s, size_t n, size_t pos, size_t *len, uint32_t *cp) {
    *len = tok_utf8_next(s + pos, n - pos, cp);
    return tok_class_of(*cp);
}

static size_t run_end(const uint8_t *s, size_t n, size_t pos, int cls) {
    while (pos < n) {
        size_t len;
        uint32_t cp;
        if (class_at(s, n, pos, &len, &cp) != cls) break;
        pos += len;
    }
    return pos;
}

static int lower(uint8_t c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/* (?i:'s|'t|'re|'ve|'m|'ll|'d) at s[pos] == '\'': its length, or 0. */
static size_t contraction_len(const uint8_t *s, size_t n, size_t pos) {
    if (pos + 1 >= n) return 0;
    int a = lower(s[pos + 1]);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if (pos + 2 >= n) return 0;
    int b = lower(s[pos + 2]);
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
}

static int is_crlf(uint32_t cp) { return cp == '\r' || cp == '\n'; }

size_t pretok_llama3_next(const uint8_t *s, size_t n, size_t pos, int max_digits) {
    if (s[pos] == '\'') {
        size_t c = contraction_len(s, n, pos);
        if (c) return pos + c;
    }
    size_t len0, len1 = 0;
    uint32_t cp0, cp1 = 0;
    int cls0 = class_at(s, n, pos, &len0, &cp0), cls1 = -1;
    if (pos + len0 < n) cls1 = class_at(s, n, pos + len0, &len1, &cp1);
    /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    if (cls0 == TOK_LETTER) return run_end(s, n, pos + len0, TOK_LETTER);
    if (cls0 != TOK_NUMBER && !is_crlf(cp0) && cls1 == TOK_LETTER) return run_end(s, n, pos + len0 + len1, TOK_LETTER);
    /* \p{N}{1,max_digits} */
    if (cls0 == TOK_NUMBER) {
        size_t end = pos + len0;
        for (int k = 1; k < max_digits && end < n; k++) {
            size_t len;
            uint32_t cp;
            if (class_at(s, n, end, &len, &cp) != TOK_NUMBER) break;
            end += len;
        }
        return end;
    }
    /*  ?[^\s\p{L}\p{N}]+[\r\n]* */
    size_t other = cls0 == TOK_OTHER ? pos : (cp0 == ' ' && cls1 == TOK_OTHER) ? pos + len0 : n;
    if (other < n) {
        size_t end = run_end(s, n, other, TOK_OTHER);
        while (end < n && (s[end] == '\r' || s[end] == '\n')) end++;
        return end;
    }
    /* whitespace: its run, the start of its last character, and the end of its last CR/LF */
    size_t last = pos, end = pos, after_nl = 0;
    while (end < n) {
        size_t len;
        uint32_t cp;
        if (class_at(s, n, end, &len, &cp) != TOK_SPACE) break;
        last = end;
        end += len;
        if (is_crlf(cp)) after_nl = end;
    }
    if (after_nl) return after_nl;   /* \s*[\r\n]+ */
    if (end == n) return end;        /* \s+(?!\S) takes the whole run at the end of the text */
    if (last > pos) return last;     /* \s+(?!\S) backs off one character before a non-space */
    return end;                      /* \s+ : a lone whitespace character */
}
