/* Small helpers shared by every module: allocation that never returns NULL, string bits. */
#ifndef POSTERN_UTIL_H
#define POSTERN_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t n);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Overwrite a secret so the compiler cannot elide it (passwords, keys). */
void wipe(void *p, size_t n);

/* ASCII case-insensitive comparisons: protocol keywords are ASCII (RFC 3501 §9). */
int ascii_casecmp(const char *a, const char *b);
int ascii_ncasecmp(const char *a, const char *b, size_t n);

/* Monotonic clock in milliseconds. */
uint64_t now_ms(void);

#endif
