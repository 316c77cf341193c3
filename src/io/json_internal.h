/* Internal to src/io: helpers shared by the JSON reader and writer. */
#ifndef LORAC_IO_JSON_INTERNAL_H
#define LORAC_IO_JSON_INTERNAL_H

#include <stddef.h>

/* Length (1..4) of the well-formed UTF-8 sequence at s[0..n), or 0 if it is not one
 * (overlong forms, surrogates, code points past U+10FFFF and truncated sequences are rejected). */
static inline size_t json_utf8_seq_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c == 0xE0) { len = 3; lo = 0xA0; }
    else if (c >= 0xE1 && c <= 0xEC) len = 3;
    else if (c == 0xED) { len = 3; hi = 0x9F; } /* excludes U+D800..U+DFFF */
    else if (c >= 0xEE && c <= 0xEF) len = 3;
    else if (c == 0xF0) { len = 4; lo = 0x90; }
    else if (c >= 0xF1 && c <= 0xF3) len = 4;
    else if (c == 0xF4) { len = 4; hi = 0x8F; } /* up to U+10FFFF */
    else return 0;
    if (n < len) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    return len;
}

#endif
