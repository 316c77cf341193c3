/* pretok_gpt2.c — GPT-2's pre-tokenizer as a hand-written scanner.
 *
 * GPT-2 (encoder.py, with the Python `regex` module) splits text with
 *     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * At each position the first alternative that matches wins, and each is greedy. Worked out:
 *   - an ASCII apostrophe followed by s t m d re ve ll (case-sensitive) is a contraction;
 *   - a run of letters, of numbers or of "other" characters, optionally led by ONE ASCII space
 *     (U+0020 only; a tab or U+00A0 never leads a word);
 *   - whitespace: a run that reaches the end of the text is one token; a run of k >= 2 characters
 *     followed by a non-space gives its first k-1 characters (the last one is left to lead the next
 *     word if it is a space, or to be a token of its own otherwise); a lone whitespace character
 *     before a non-space (that did not lead a word) is a token of its own.
 * The character classes are the regex module's (see unicode_gpt2.c). Bytes that are not well-formed
 * UTF-8 are single characters of class "other", as if the text were decoded with
 * errors="surrogateescape", so every byte string has a split and encode/decode round-trip exactly.
 */
#include "tok/tok_internal.h"

int tok_class_of(uint32_t cp) {
    if (cp < 128) return tok_ascii_class[cp];
    size_t lo = 0, hi = tok_class_nranges; /* search [lo, hi) */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp < tok_class_ranges[mid].lo) hi = mid;
        else if (cp > tok_class_ranges[mid].hi) lo = mid + 1;
        else return tok_class_ranges[mid].cls;
    }
    return TOK_OTHER;
}

size_t tok_utf8_next(const uint8_t *s, size_t n, uint32_t *cp) {
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c == 0xE0) { len = 3; lo = 0xA0; } /* no overlong forms */
    else if (c >= 0xE1 && c <= 0xEC) len = 3;
    else if (c == 0xED) { len = 3; hi = 0x9F; } /* no surrogates */
    else if (c >= 0xEE && c <= 0xEF) len = 3;
    else if (c == 0xF0) { len = 4; lo = 0x90; }
    else if (c >= 0xF1 && c <= 0xF3) len = 4;
    else if (c == 0xF4) { len = 4; hi = 0x8F; } /* up to U+10FFFF */
    else goto invalid;
    if (n < len || s[1] < lo || s[1] > hi) goto invalid;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xC0) != 0x80) goto invalid;
    if (len == 2) *cp = ((c & 0x1Fu) << 6) | (s[1] & 0x3Fu);
    else if (len == 3) *cp = ((c & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
    else *cp = ((c & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6) | (s[3] & 0x3Fu);
    return len;
invalid:
    *cp = 0xDC00u + c; /* a lone surrogate: class "other" */
    return 1;
}

/* Class of the character at s[pos] (pos < n); *len gets its length. */
static int class_at(const uint8_t *s, size_t n, size_t pos, size_t *len) {
    uint32_t cp;
    if (s[pos] < 0x80) {
        *len = 1;
        return tok_ascii_class[s[pos]];
    }
    *len = tok_utf8_next(s + pos, n - pos, &cp);
    return tok_class_of(cp);
}

/* End of the run of characters of class cls starting at pos. */
static size_t run_end(const uint8_t *s, size_t n, size_t pos, int cls) {
    while (pos < n) {
        size_t len;
        if (class_at(s, n, pos, &len) != cls) break;
        pos += len;
    }
    return pos;
}

/* 's 't 'm 'd 're 've 'll at s[pos] == '\'': its length, or 0. */
static size_t contraction_len(const uint8_t *s, size_t n, size_t pos) {
    if (pos + 1 >= n) return 0;
    uint8_t a = s[pos + 1];
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if (pos + 2 >= n) return 0;
    uint8_t b = s[pos + 2];
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
}

size_t pretok_gpt2_next(const uint8_t *s, size_t n, size_t pos) {
    if (s[pos] == '\'') {
        size_t c = contraction_len(s, n, pos);
        if (c) return pos + c;
    }
    size_t len0;
    int cls0 = class_at(s, n, pos, &len0);
    if (s[pos] == ' ' && pos + 1 < n) {
        /* ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+` with the space */
        size_t len1;
        int cls1 = class_at(s, n, pos + 1, &len1);
        if (cls1 != TOK_SPACE) return run_end(s, n, pos + 1 + len1, cls1);
    }
    if (cls0 != TOK_SPACE) return run_end(s, n, pos + len0, cls0);
    /* whitespace: find the run and the start of its last character */
    size_t last = pos, end = pos + len0;
    while (end < n) {
        size_t len;
        if (class_at(s, n, end, &len) != TOK_SPACE) break;
        last = end;
        end += len;
    }
    if (end == n) return end;        /* \s+(?!\S) takes the whole run at the end of the text */
    if (last > pos) return last;     /* \s+(?!\S) backs off one character before a non-space */
    return end;                      /* \s+ : a lone whitespace character */
}
