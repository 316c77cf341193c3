/* stem.c — the Snowball English ("Porter2") stemmer, as METEOR 1.5's stem module uses it
 * (org.tartarus.snowball.ext.englishStemmer, with the gener/commun/arsen region exceptions).
 * Works on lowercase UTF-8 bytes: non-ASCII bytes are consonants, as they are to the Java stemmer.
 */
#include <string.h>

#include "metrics_internal.h"

typedef struct word {
    char *w; /* the word being stemmed, NUL-terminated, with room for one more byte */
    int n;
    int p1, p2;
} word;

static int is_v(char c) { return c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u' || c == 'y'; }
static int is_v_wxy(char c) { return is_v(c) || c == 'w' || c == 'x' || c == 'Y'; }
static int is_li(char c) { return c && strchr("cdeghkmnrt", c) != NULL; }

static int ends(const word *w, const char *s) {
    int k = (int)strlen(s);
    return k <= w->n && !memcmp(w->w + w->n - k, s, (size_t)k);
}
/* Replaces the last k bytes with s. */
static void set_to(word *w, int k, const char *s) {
    int m = (int)strlen(s);
    memcpy(w->w + w->n - k, s, (size_t)m);
    w->n += m - k;
    w->w[w->n] = 0;
}

/* The longest of the given suffixes that the word ends with, or -1. */
static int longest(const word *w, const char *const *list, int count) {
    int best = -1, blen = -1;
    for (int i = 0; i < count; i++) {
        int k = (int)strlen(list[i]);
        if (k > blen && ends(w, list[i])) { best = i; blen = k; }
    }
    return best;
}

/* A short syllable ends at position end: non-vowel, vowel, non-vowel other than w x Y; or, at the
 * start of the word, vowel then non-vowel. */
static int short_syllable(const word *w, int end) {
    const char *s = w->w;
    if (end >= 3 && !is_v(s[end - 3]) && is_v(s[end - 2]) && !is_v_wxy(s[end - 1])) return 1;
    return end == 2 && is_v(s[0]) && !is_v(s[1]);
}

static int has_vowel(const word *w, int from, int to) {
    for (int i = from; i < to; i++) if (is_v(w->w[i])) return 1;
    return 0;
}

static void mark_regions(word *w) {
    const char *s = w->w;
    w->p1 = w->p2 = w->n;
    int i = 0;
    if (!strncmp(s, "gener", 5)) i = 5;
    else if (!strncmp(s, "commun", 6)) i = 6;
    else if (!strncmp(s, "arsen", 5)) i = 5;
    else {
        while (i < w->n && !is_v(s[i])) i++;
        while (i < w->n && is_v(s[i])) i++;
        if (i >= w->n) return;
        i++;
    }
    w->p1 = i;
    while (i < w->n && !is_v(s[i])) i++;
    while (i < w->n && is_v(s[i])) i++;
    if (i >= w->n) return;
    w->p2 = i + 1;
}

static void step_1a(word *w) {
    if (ends(w, "'s'")) set_to(w, 3, "");
    else if (ends(w, "'s")) set_to(w, 2, "");
    else if (ends(w, "'")) set_to(w, 1, "");
    if (ends(w, "sses")) set_to(w, 4, "ss");
    else if (ends(w, "ied") || ends(w, "ies")) set_to(w, 3, w->n - 3 > 1 ? "i" : "ie");
    else if (ends(w, "us") || ends(w, "ss")) return;
    else if (ends(w, "s") && w->n >= 2 && has_vowel(w, 0, w->n - 2)) set_to(w, 1, "");
}

static void step_1b(word *w) {
    static const char *const suf[] = {"eed", "eedly", "ed", "edly", "ing", "ingly"};
    int k = longest(w, suf, 6);
    if (k < 0) return;
    int len = (int)strlen(suf[k]);
    if (k <= 1) {
        if (w->n - len >= w->p1) set_to(w, len, "ee");
        return;
    }
    if (!has_vowel(w, 0, w->n - len)) return;
    set_to(w, len, "");
    if (ends(w, "at") || ends(w, "bl") || ends(w, "iz")) set_to(w, 0, "e");
    else if (ends(w, "bb") || ends(w, "dd") || ends(w, "ff") || ends(w, "gg") || ends(w, "mm") || ends(w, "nn") ||
             ends(w, "pp") || ends(w, "rr") || ends(w, "tt"))
        set_to(w, 1, "");
    else if (w->p1 >= w->n && short_syllable(w, w->n)) set_to(w, 0, "e");
}

static void step_1c(word *w) {
    if (w->n >= 3 && (w->w[w->n - 1] == 'y' || w->w[w->n - 1] == 'Y') && !is_v(w->w[w->n - 2])) w->w[w->n - 1] = 'i';
}

static void step_2(word *w) {
    static const char *const suf[] = {"tional", "enci",  "anci",   "abli",    "entli",  "izer",    "ization",
                                      "ational", "ation", "ator",   "alism",   "aliti",  "alli",    "fulness",
                                      "ousli",  "ousness", "iveness", "iviti", "biliti", "bli",     "ogi",
                                      "fulli",  "lessli", "li"};
    static const char *const rep[] = {"tion", "ence", "ance", "able", "ent", "ize", "ize",  "ate",
                                      "ate",  "ate",  "al",   "al",   "al",  "ful", "ous",  "ous",
                                      "ive",  "ive",  "ble",  "ble",  "og",  "ful", "less", ""};
    int k = longest(w, suf, 24);
    if (k < 0) return;
    int len = (int)strlen(suf[k]);
    if (w->n - len < w->p1) return;
    if (!strcmp(suf[k], "ogi") && !(w->n - len > 0 && w->w[w->n - len - 1] == 'l')) return;
    if (!strcmp(suf[k], "li") && !(w->n - len > 0 && is_li(w->w[w->n - len - 1]))) return;
    set_to(w, len, rep[k]);
}

static void step_3(word *w) {
    static const char *const suf[] = {"tional", "ational", "alize", "icate", "iciti", "ical", "ful", "ness", "ative"};
    static const char *const rep[] = {"tion", "ate", "al", "ic", "ic", "ic", "", "", ""};
    int k = longest(w, suf, 9);
    if (k < 0) return;
    int len = (int)strlen(suf[k]);
    if (w->n - len < w->p1) return;
    if (k == 8 && w->n - len < w->p2) return;
    set_to(w, len, rep[k]);
}

static void step_4(word *w) {
    static const char *const suf[] = {"al",  "ance", "ence", "er",  "ic",  "able", "ible", "ant", "ement", "ment",
                                      "ent", "ism",  "ate",  "iti", "ous", "ive",  "ize",  "ion"};
    int k = longest(w, suf, 18);
    if (k < 0) return;
    int len = (int)strlen(suf[k]);
    if (w->n - len < w->p2) return;
    if (k == 17) {
        char c = w->n - len > 0 ? w->w[w->n - len - 1] : 0;
        if (c != 's' && c != 't') return;
    }
    set_to(w, len, "");
}

static void step_5(word *w) {
    if (ends(w, "e")) {
        int at = w->n - 1;
        if (at >= w->p2 || (at >= w->p1 && !short_syllable(w, at))) set_to(w, 1, "");
    } else if (ends(w, "l")) {
        int at = w->n - 1;
        if (at >= w->p2 && at > 0 && w->w[at - 1] == 'l') set_to(w, 1, "");
    }
}

void mt_stem_english(const char *in, char *out) {
    static const char *const exc1[][2] = {
        {"skis", "ski"},   {"skies", "sky"}, {"dying", "die"},   {"lying", "lie"},   {"tying", "tie"},
        {"idly", "idl"},   {"gently", "gentl"}, {"ugly", "ugli"}, {"early", "earli"}, {"only", "onli"},
        {"singly", "singl"}, {"sky", "sky"}, {"news", "news"},   {"howe", "howe"},   {"atlas", "atlas"},
        {"cosmos", "cosmos"}, {"bias", "bias"}, {"andes", "andes"}};
    static const char *const exc2[] = {"inning", "outing", "canning", "herring", "earring", "proceed", "exceed", "succeed"};
    size_t len = strlen(in);
    for (size_t i = 0; i < sizeof exc1 / sizeof exc1[0]; i++)
        if (strlen(exc1[i][0]) == len && !memcmp(in, exc1[i][0], len)) { strcpy(out, exc1[i][1]); return; }
    memcpy(out, in, len);
    out[len] = 0;
    /* words of fewer than three characters stay */
    size_t chars = 0;
    for (size_t i = 0; i < len; i++) chars += ((unsigned char)in[i] & 0xC0) != 0x80;
    if (chars < 3) return;
    word w = {out, (int)len, 0, 0};
    /* prelude: drop a leading apostrophe; y at the start or after a vowel is a consonant (Y) */
    if (w.w[0] == '\'') { memmove(w.w, w.w + 1, (size_t)w.n); w.n--; }
    if (w.n > 0 && w.w[0] == 'y') w.w[0] = 'Y';
    for (int i = 1; i < w.n; i++) if (w.w[i] == 'y' && is_v(w.w[i - 1])) w.w[i] = 'Y';
    mark_regions(&w);
    step_1a(&w);
    int stop = 0;
    for (size_t i = 0; i < sizeof exc2 / sizeof exc2[0]; i++) if (!strcmp(w.w, exc2[i])) stop = 1;
    if (!stop) {
        step_1b(&w);
        step_1c(&w);
        step_2(&w);
        step_3(&w);
        step_4(&w);
        step_5(&w);
    }
    for (int i = 0; i < w.n; i++) if (w.w[i] == 'Y') w.w[i] = 'y';
}
