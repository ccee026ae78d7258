/*
 * tokenizer_text.c — the text half of OpenCLIP's SimpleTokenizer, on code points:
 *   bytes --UTF-8 decode (errors='replace')--> html.unescape twice --> " ".join(s.split())
 *   --> str.lower() --> regex.findall(pattern) pieces.
 * Each function reproduces the Python behaviour named in its comment (Python 3.11, the versions
 * that made ../shared/golden/tokenizer). Unicode properties come from utf8proc (categories, bidi
 * classes, simple case mappings); the only literal code point lists are the ones Python itself
 * hard-codes (html's invalid references) and, for the Final_Sigma rule only, the parts of the
 * Case_Ignorable and Cased properties (Unicode DerivedCoreProperties.txt) that utf8proc does not
 * expose: the 17 Word_Break MidLetter/MidNumLet/Single_Quote characters and the Other_Lowercase/
 * Other_Uppercase characters without case mappings. tools/check_unicode.py compares every code
 * point against Python: no differences except code points unassigned in Python's Unicode 14.
 */
#include "data/tokenizer_impl.h"

#include <string.h>
#include <utf8proc.h>

/* ---- UTF-8 decoding as bytes.decode('utf-8', 'replace') ------------------------------------- */

size_t cm_utf8_decode_replace(const uint8_t *s, size_t len, uint32_t *out) {
    size_t i = 0, n = 0;
    while (i < len) {
        uint8_t b = s[i];
        if (b < 0x80) { out[n++] = b; i++; continue; }
        int need; uint8_t lo = 0x80, hi = 0xBF; uint32_t cp;
        if (b >= 0xC2 && b <= 0xDF) { need = 1; cp = b & 0x1F; }
        else if (b == 0xE0) { need = 2; lo = 0xA0; cp = 0; }                 /* no overlongs */
        else if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) { need = 2; cp = b & 0x0F; }
        else if (b == 0xED) { need = 2; hi = 0x9F; cp = 0xD; }                /* no surrogates */
        else if (b == 0xF0) { need = 3; lo = 0x90; cp = 0; }
        else if (b >= 0xF1 && b <= 0xF3) { need = 3; cp = b & 0x07; }
        else if (b == 0xF4) { need = 3; hi = 0x8F; cp = 4; }                 /* <= U+10FFFF */
        else { out[n++] = 0xFFFD; i++; continue; }                          /* 80..C1, F5..FF */
        size_t k = 1;                                   /* bytes of the maximal valid prefix */
        for (; k <= (size_t)need; k++) {
            if (i + k >= len) break;
            uint8_t c = s[i + k];
            if (k == 1 ? (c < lo || c > hi) : (c < 0x80 || c > 0xBF)) break;
            cp = (cp << 6) | (c & 0x3F);
        }
        if (k == (size_t)need + 1) { out[n++] = cp; i += k; }
        else { out[n++] = 0xFFFD; i += k; }             /* one U+FFFD per maximal subpart */
    }
    return n;
}

/* ---- html.unescape (Lib/html/__init__.py, Python 3.11) ------------------------------------- */

/* _invalid_charrefs: 0x00, 0x0d and the cp1252 remapping of 0x80..0x9f. */
static const uint16_t charref_c1[32] = {
    0x20AC, 0x81, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039,
    0x0152, 0x8D, 0x017D, 0x8F, 0x90, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
    0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D, 0x017E, 0x0178};

/* _invalid_codepoints: references to these produce nothing. */
static bool charref_invalid(uint32_t c) {
    return (c >= 0x1 && c <= 0x8) || c == 0xB || (c >= 0xE && c <= 0x1F) || (c >= 0x7F && c <= 0x9F) ||
           (c >= 0xFDD0 && c <= 0xFDEF) || (c & 0xFFFE) == 0xFFFE;
}

/* Numeric reference value -> out (0 or 1 code points). */
static size_t charref_numeric(uint32_t num, uint32_t *out) {
    if (num == 0) { out[0] = 0xFFFD; return 1; }
    if (num == 0x0D) { out[0] = 0x0D; return 1; }
    if (num >= 0x80 && num <= 0x9F) { out[0] = charref_c1[num - 0x80]; return 1; }
    if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) { out[0] = 0xFFFD; return 1; }
    if (charref_invalid(num)) return 0;
    out[0] = num;
    return 1;
}

/* Binary search of the sorted entity names for exactly name[0..len). name may hold NUL bytes (a
   caption's U+0000 is part of a reference's name, as in Python's regex): compare as byte strings of
   known length, never as C strings (strncmp stopped at the NUL and then read past the shorter table
   name; found by fuzz_tokenizer, tests/test_fuzz_regress.c). */
static const CmHtmlEntity *entity_find(const char *name, size_t len) {
    size_t lo = 0, hi = cm_html5_n_entities;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const char *e = cm_html5_entities[mid].name;
        size_t el = strlen(e);
        int c = memcmp(e, name, el < len ? el : len);
        if (c == 0) c = el < len ? -1 : el > len ? 1 : 0;
        if (c == 0) return &cm_html5_entities[mid];
        if (c < 0) lo = mid + 1; else hi = mid;
    }
    return NULL;
}

static size_t put_entity(const CmHtmlEntity *e, uint32_t *out) {
    out[0] = e->cp[0];
    if (e->cp[1]) { out[1] = e->cp[1]; return 2; }
    return 1;
}

static bool is_dec(uint32_t c) { return c >= '0' && c <= '9'; }
static bool is_hex(uint32_t c) { return is_dec(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
static uint32_t hex_val(uint32_t c) { return is_dec(c) ? c - '0' : (c | 0x20) - 'a' + 10; }

/* _charref = &(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?), replaced by _replace_charref;
   re.sub scans left to right and never rescans a replacement. */
size_t cm_html_unescape(const uint32_t *in, size_t n, uint32_t *out) {
    size_t i = 0, o = 0;
    while (i < n) {
        if (in[i] != '&') { out[o++] = in[i++]; continue; }
        size_t j = i + 1;
        if (j < n && in[j] == '#') {
            size_t k = j + 1;
            bool hex = false;
            if (k < n && (in[k] == 'x' || in[k] == 'X') && k + 1 < n && is_hex(in[k + 1])) { hex = true; k++; }
            else if (!(k < n && is_dec(in[k]))) { out[o++] = in[i++]; continue; }  /* no match */
            uint32_t num = 0;                           /* saturates above 0x10FFFF */
            while (k < n && (hex ? is_hex(in[k]) : is_dec(in[k]))) {
                uint32_t d = hex ? hex_val(in[k]) : in[k] - '0';
                num = num > 0x10FFFF ? num : num * (hex ? 16 : 10) + d;
                k++;
            }
            if (k < n && in[k] == ';') k++;
            o += charref_numeric(num, out + o);
            i = k;
            continue;
        }
        size_t e = j;                                   /* named: [^\t\n\f <&#;]{1,32} */
        while (e < n && e - j < 32 && in[e] != '\t' && in[e] != '\n' && in[e] != '\f' && in[e] != ' ' &&
               in[e] != '<' && in[e] != '&' && in[e] != '#' && in[e] != ';')
            e++;
        if (e == j) { out[o++] = in[i++]; continue; }   /* no match */
        size_t end = (e < n && in[e] == ';') ? e + 1 : e;
        size_t slen = end - j;                          /* s = in[j..end), the names are ASCII */
        char s[40];
        size_t ascii = 0;
        while (ascii < slen && in[j + ascii] < 0x80) { s[ascii] = (char)in[j + ascii]; ascii++; }
        const CmHtmlEntity *ent = ascii == slen ? entity_find(s, slen) : NULL;
        if (ent) { o += put_entity(ent, out + o); i = end; continue; }
        /* longest prefix s[:x], x from len(s)-1 down to 2, that is a name */
        size_t x = slen - 1 < ascii ? slen - 1 : ascii;
        for (; x >= 2; x--)
            if ((ent = entity_find(s, x))) break;
        if (ent && x >= 2) {
            o += put_entity(ent, out + o);
            for (size_t t = j + x; t < end; t++) out[o++] = in[t];
        } else {
            for (size_t t = i; t < end; t++) out[o++] = in[t];   /* '&' + s unchanged */
        }
        i = end;
    }
    return o;
}

/* ---- whitespace and case -------------------------------------------------------------------- */

bool cm_py_isspace(uint32_t c) {
    if (c < 0x80) return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20);
    const utf8proc_property_t *p = utf8proc_get_property((utf8proc_int32_t)c);
    return p->category == UTF8PROC_CATEGORY_ZS || p->bidi_class == UTF8PROC_BIDI_CLASS_WS ||
           p->bidi_class == UTF8PROC_BIDI_CLASS_B || p->bidi_class == UTF8PROC_BIDI_CLASS_S;
}

size_t cm_ws_clean(const uint32_t *in, size_t n, uint32_t *out) {
    size_t o = 0, i = 0;
    while (i < n) {
        while (i < n && cm_py_isspace(in[i])) i++;
        if (i == n) break;
        if (o) out[o++] = ' ';
        while (i < n && !cm_py_isspace(in[i])) out[o++] = in[i++];
    }
    return o;
}

static bool uc_case_ignorable(uint32_t c) {
    switch (c) {   /* Word_Break = MidLetter, MidNumLet or Single_Quote (Unicode 14) */
    case 0x27: case 0x2E: case 0x3A: case 0xB7: case 0x387: case 0x55F: case 0x5F4: case 0x2018:
    case 0x2019: case 0x2024: case 0x2027: case 0xFE13: case 0xFE52: case 0xFE55: case 0xFF07:
    case 0xFF0E: case 0xFF1A:
    case 0x5E: case 0x60:      /* '^' and '`' are Sk */
        return true;
    }
    if (c < 0x80) return false;
    int cat = utf8proc_category((utf8proc_int32_t)c);
    return cat == UTF8PROC_CATEGORY_MN || cat == UTF8PROC_CATEGORY_ME || cat == UTF8PROC_CATEGORY_CF ||
           cat == UTF8PROC_CATEGORY_LM || cat == UTF8PROC_CATEGORY_SK;
}

/* Cased = Lu, Ll, Lt, or having a case mapping (covers the Other_Lowercase/Other_Uppercase symbols
   with mappings: Roman numerals, circled letters); modifier letters are case-ignorable first. */
static bool uc_cased(uint32_t c) {
    if (c < 0x80) return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
    int cat = utf8proc_category((utf8proc_int32_t)c);
    if (cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT) return true;
    if (c == 0xAA || c == 0xBA) return true;   /* Other_Lowercase letters of category Lo without mappings */
    if ((c >= 0x1F130 && c <= 0x1F149) || (c >= 0x1F150 && c <= 0x1F169) || (c >= 0x1F170 && c <= 0x1F189))
        return true;                            /* Other_Uppercase squared/circled capitals (So), no mappings */
    return utf8proc_tolower((utf8proc_int32_t)c) != (utf8proc_int32_t)c ||
           utf8proc_toupper((utf8proc_int32_t)c) != (utf8proc_int32_t)c;
}

/* unicodeobject.c lower_ucs4 / handle_capital_sigma: U+03A3 becomes final sigma U+03C2 when the
   nearest non-case-ignorable character before it is cased and the nearest one after it is not
   (or there is none). The backward state is carried along; each forward scan stops at the next
   non-ignorable character, so the whole pass stays linear. */
size_t cm_py_lower(const uint32_t *in, size_t n, uint32_t *out) {
    size_t o = 0;
    bool prev_cased = false;                            /* nearest non-ignorable before i is cased */
    for (size_t i = 0; i < n; i++) {
        uint32_t c = in[i];
        if (c < 0x80) {
            out[o++] = (c >= 'A' && c <= 'Z') ? c + 32 : c;
            if (!uc_case_ignorable(c)) prev_cased = uc_cased(c);
            continue;
        }
        if (c == 0x130) { out[o++] = 'i'; out[o++] = 0x307; }
        else if (c == 0x3A3) {
            bool final = prev_cased;
            if (final) {
                size_t j = i + 1;
                while (j < n && uc_case_ignorable(in[j])) j++;
                final = j == n || !uc_cased(in[j]);
            }
            out[o++] = final ? 0x3C2 : 0x3C3;
        } else {
            out[o++] = (uint32_t)utf8proc_tolower((utf8proc_int32_t)c);
        }
        if (!uc_case_ignorable(c)) prev_cased = uc_cased(c);
    }
    return o;
}

/* ---- pre-tokenisation ----------------------------------------------------------------------- */

/* Classes for <...>|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+ under regex.IGNORECASE. \s is the
   White_Space property (= str.isspace without U+001C..U+001F). DROP: a character outside \s, L and
   N one of whose simple case variants is a letter or number; under IGNORECASE the negated class
   rejects it and [\p{L}] does not take it, so findall skips it (U+0345 is the only such one). */
static int class_of_props(uint32_t c) {
    int cat = utf8proc_category((utf8proc_int32_t)c);
    if (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) return CM_PT_LETTER;
    if (cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO) return CM_PT_NUMBER;
    if (cm_py_isspace(c) && !(c >= 0x1C && c <= 0x1F)) return CM_PT_SPACE;
    utf8proc_int32_t v[2] = {utf8proc_toupper((utf8proc_int32_t)c), utf8proc_tolower((utf8proc_int32_t)c)};
    for (int k = 0; k < 2; k++) {
        if (v[k] == (utf8proc_int32_t)c) continue;
        int vc = utf8proc_category(v[k]);
        if ((vc >= UTF8PROC_CATEGORY_LU && vc <= UTF8PROC_CATEGORY_LO) ||
            (vc >= UTF8PROC_CATEGORY_ND && vc <= UTF8PROC_CATEGORY_NO))
            return CM_PT_DROP;
    }
    return CM_PT_OTHER;
}

int cm_pretok_class(uint32_t c) {
    if (c < 0x80) {
        if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return CM_PT_LETTER;
        if (c >= '0' && c <= '9') return CM_PT_NUMBER;
        if ((c >= 0x09 && c <= 0x0D) || c == 0x20) return CM_PT_SPACE;
        return CM_PT_OTHER;
    }
    if (c > 0x10FFFF) return CM_PT_OTHER;
    return class_of_props(c);
}

/* Does c match the ASCII letter or symbol x under IGNORECASE (simple case variants: 'ſ' ~ 's')? */
static bool lit_eq(uint32_t c, char x) {
    if (c == (uint32_t)(unsigned char)x) return true;
    if (x < 'a' || x > 'z') return false;
    if (c == (uint32_t)(x - 32)) return true;
    if (c < 0x80 || c > 0x10FFFF) return false;
    return utf8proc_tolower((utf8proc_int32_t)c) == x || utf8proc_toupper((utf8proc_int32_t)c) == x - 32;
}

/* Length of the literal lit matched at t[p..n) (0: no match); *exact: matched byte for byte. */
static size_t lit_match(const uint32_t *t, size_t n, size_t p, const char *lit, bool *exact) {
    size_t L = strlen(lit);
    if (n - p < L) return 0;
    bool ex = true;
    for (size_t k = 0; k < L; k++) {
        if (!lit_eq(t[p + k], lit[k])) return 0;
        if (t[p + k] != (uint32_t)(unsigned char)lit[k]) ex = false;
    }
    if (exact) *exact = ex;
    return L;
}

bool cm_pretok_next(const uint32_t *t, size_t n, size_t *pos, size_t *start, size_t *end, int *special) {
    static const char *const contractions[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
    size_t p = *pos;
    while (p < n) {
        uint32_t c = t[p];
        size_t L;
        bool exact;
        *special = 0;
        if (c == '<') {
            if ((L = lit_match(t, n, p, "<start_of_text>", &exact))) { *special = exact ? 1 : 0; goto found; }
            if ((L = lit_match(t, n, p, "<end_of_text>", &exact))) { *special = exact ? 2 : 0; goto found; }
        } else if (c == '\'') {
            for (int k = 0; k < 7; k++)
                if ((L = lit_match(t, n, p, contractions[k], NULL))) goto found;
        }
        int cls = cm_pretok_class(c);
        if (cls == CM_PT_LETTER) {
            L = 1;
            while (p + L < n && cm_pretok_class(t[p + L]) == CM_PT_LETTER) L++;
            goto found;
        }
        if (cls == CM_PT_NUMBER) { L = 1; goto found; }
        if (cls == CM_PT_OTHER) {
            L = 1;
            while (p + L < n && cm_pretok_class(t[p + L]) == CM_PT_OTHER) L++;
            goto found;
        }
        p++;                                            /* \s or DROP: no alternative matches */
        continue;
    found:
        *start = p; *end = p + L; *pos = p + L;
        return true;
    }
    *pos = n;
    return false;
}
