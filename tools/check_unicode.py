#!/usr/bin/env python3
"""check_unicode.py — development check of tokenizer_text.c against Python, code point by code point.
Writes one line per code point (surrogates excepted): hex cp, str.isspace, str.lower (hex cps joined
by '+'), the Final_Sigma context classes ('A'+c+'Σ' and c+'Σ' lowered end in ς: 1/0), and the class
the OpenCLIP pattern (regex module, IGNORECASE) gives the char: L letter, N number, O other, S \\s, D dropped.
    python3 tools/check_unicode.py > /tmp/uc.txt
    cc -O2 -Iinclude -Isrc tools/check_unicode.c build/libclipmod.a -lutf8proc -lcjson -lz -lm -lpthread -fopenmp \\
       -o /tmp/check_unicode && /tmp/check_unicode /tmp/uc.txt
Python's unicodedata (14.0 in 3.11) and utf8proc (15.0 in 2.8) differ on code points assigned in
Unicode 15; the C side prints every difference.
"""
import regex
pat = regex.compile(r"""<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
                    regex.IGNORECASE)
for cp in range(0x110000):
    if 0xD800 <= cp <= 0xDFFF:
        continue
    c = chr(cp)
    a = pat.findall(c)
    if a == [c]:
        k = 'L' if pat.findall('a' + c) == ['a' + c] else 'O' if pat.findall('!' + c) == ['!' + c] else 'N'
    else:
        k = 'S' if not c.isspace() and False else ('S' if regex.fullmatch(r'\s', c) else 'D')
    t1 = ('\u0391' + c + '\u03a3').lower()[-1] == '\u03c2'
    t2 = (c + '\u03a3').lower()[-1] == '\u03c2'
    print('%x %d %s %d %d %s' % (cp, c.isspace(), '+'.join('%x' % ord(x) for x in c.lower()), t1, t2, k))
