/* Pieces shared by the typed IMAP argument parsers: character classes, numbers, UTF-8. */
#ifndef POSTERN_IMAP_ARGS_INTERNAL_H
#define POSTERN_IMAP_ARGS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "postern/imap.h"

#define MODSEQ_MAX INT64_MAX /* mod-sequence-value: 63 bits (RFC 7162 §7) */

/* RFC 3501 §9 ATOM-CHAR: CHAR except atom-specials "(" ")" "{" SP CTL "%" "*" DQUOTE "\" "]". */
bool args_is_atom_char(unsigned char c);
bool args_is_atom(const char *s, size_t len);

/* 1*DIGIT up to max; with nonzero, nz-number (no 0, no leading zero). */
bool args_number(const char *s, size_t len, uint64_t max, bool nonzero, uint64_t *out);

/* An atom argument equal to word, case-insensitively (RFC 3501 §9: keywords are). */
bool args_is_word(const struct imap_arg *a, const char *word);
bool args_equal(const char *s, size_t len, const char *word);

/* One UTF-8 sequence at s[0..len): its length with *cp set; 0 when s is a valid but cut
 * prefix; -1 when s[0] does not start a valid sequence (overlong, surrogate, > U+10FFFF). */
int utf8_next(const unsigned char *s, size_t len, uint32_t *cp);
/* Appends cp (<= U+10FFFF, no surrogate) as UTF-8 to out; returns the bytes written (1-4). */
size_t utf8_put(uint32_t cp, char *out);

#endif
