/* Maildir file names (<unique>,S=<n>,W=<n>,U=<uid>:2,<flags>), message sizes and keywords. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/time.h>
#include <unistd.h>

#include "postern/util.h"

/* Maildir info letters we own, in ASCII order as the spec wants them (cr.yp.to/proto/maildir). */
static const struct {
    char letter;
    unsigned flag;
} letters[] = {
    {'D', STORE_DRAFT}, {'F', STORE_FLAGGED}, {'R', STORE_ANSWERED},
    {'S', STORE_SEEN},  {'T', STORE_DELETED},
};

static unsigned letter_flag(char c)
{
    for (size_t i = 0; i < ARRAY_LEN(letters); i++)
        if (letters[i].letter == c)
            return letters[i].flag;
    return 0;
}

/* The value of ",<key>=<digits>" in the base; false if absent. */
static bool base_field(const char *name, size_t base_len, char key, uint64_t *value)
{
    for (size_t i = 0; i + 3 <= base_len; i++) {
        if (name[i] != ',' || name[i + 1] != key || name[i + 2] != '=')
            continue;
        uint64_t v = 0;
        size_t j = i + 3;
        if (j >= base_len || name[j] < '0' || name[j] > '9')
            continue;
        for (; j < base_len && name[j] >= '0' && name[j] <= '9'; j++) {
            if (v > UINT64_MAX / 10 - 10)
                return false;
            v = v * 10 + (uint64_t)(name[j] - '0');
        }
        if (j < base_len && name[j] != ',')
            continue;
        *value = v;
        return true;
    }
    return false;
}

void mfile_parse(const char *name, struct mfile *m)
{
    memset(m, 0, sizeof *m);
    const char *colon = strrchr(name, ':');
    m->base_len = colon ? (size_t)(colon - name) : strlen(name);
    m->extra = "";
    if (colon != NULL && colon[1] == '2' && colon[2] == ',') {
        m->extra = colon + 3;
        m->extra_len = strlen(m->extra);
        for (const char *p = m->extra; *p != '\0'; p++)
            m->flags |= letter_flag(*p);
    }
    uint64_t v;
    if (base_field(name, m->base_len, 'U', &v) && v > 0 && v <= UINT32_MAX)
        m->uid = (uint32_t)v;
    if (base_field(name, m->base_len, 'W', &v)) {
        m->vsize = v;
        m->has_vsize = true;
    }
}

static int char_cmp(const void *a, const void *b)
{
    return *(const unsigned char *)a - *(const unsigned char *)b;
}

char *mfile_name(const char *base, size_t base_len, uint64_t file_size, uint64_t size, uint32_t uid,
                 unsigned flags, const char *extra, size_t extra_len)
{
    char out[NAME_MAX + 1];
    size_t o = 0;
    /* the base without our own fields, which are appended afresh */
    for (size_t i = 0; i < base_len;) {
        size_t end = i + 1;
        while (end < base_len && base[end] != ',')
            end++;
        bool ours = base[i] == ',' && end - i >= 3 && base[i + 2] == '=' &&
                    (base[i + 1] == 'S' || base[i + 1] == 'W' || base[i + 1] == 'U');
        if (!ours) {
            if (o + (end - i) >= sizeof out)
                return NULL;
            memcpy(out + o, base + i, end - i);
            o += end - i;
        }
        i = end;
    }
    char info[64];
    size_t n = 0;
    for (size_t i = 0; i < ARRAY_LEN(letters); i++)
        if (flags & letters[i].flag)
            info[n++] = letters[i].letter;
    for (size_t i = 0; i < extra_len && n < sizeof info - 1; i++) {
        char c = extra[i];
        if (letter_flag(c) != 0 || c < 0x21 || c > 0x7e || memchr(info, c, n) != NULL)
            continue;
        info[n++] = c;
    }
    sort_items(info, n, 1, char_cmp);
    info[n] = '\0';
    int w = snprintf(out + o, sizeof out - o, ",S=%llu,W=%llu,U=%u:2,%s",
                     (unsigned long long)file_size, (unsigned long long)size, uid, info);
    if (w < 0 || (size_t)w >= sizeof out - o)
        return NULL;
    return xstrdup(out);
}

static pthread_once_t host_once = PTHREAD_ONCE_INIT;
static char host[128];

/* Maildir: '/' and ':' in the host name are written as \057 and \072; ',' too, since it
 * separates our fields. */
static void host_init(void)
{
    char raw[64] = "localhost";
    gethostname(raw, sizeof raw - 1);
    raw[sizeof raw - 1] = '\0';
    size_t o = 0;
    for (const char *p = raw; *p != '\0' && o + 5 < sizeof host; p++) {
        if (*p == '/' || *p == ':' || *p == ',' || (unsigned char)*p < 0x21)
            o += (size_t)snprintf(host + o, sizeof host - o, "\\%03o", (unsigned char)*p);
        else
            host[o++] = *p;
    }
    host[o] = '\0';
}

char *mfile_unique(void)
{
    static uint64_t counter;
    pthread_once(&host_once, host_init);
    struct timeval tv;
    gettimeofday(&tv, NULL);
    uint64_t q = __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);
    unsigned r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
        r = (unsigned)tv.tv_usec ^ (unsigned)q;
    char *out = NULL;
    if (asprintf(&out, "%lld.M%ldP%ldQ%lluR%08x.%s", (long long)tv.tv_sec, (long)tv.tv_usec,
                 (long)getpid(), (unsigned long long)q, r, host) < 0)
        return xstrdup("0.fallback");
    return out;
}

void crlf_count(const unsigned char *p, size_t n, bool *last_cr, uint64_t *bare_lf)
{
    bool cr = *last_cr;
    uint64_t bare = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n' && !cr)
            bare++;
        cr = p[i] == '\r';
    }
    *last_cr = cr;
    *bare_lf += bare;
}

enum store_status mfile_measure(int dirfd, const char *name, uint64_t *file_size, uint64_t *size,
                                int64_t *mtime)
{
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return store_errno(errno, "open", name);
    struct stat st;
    io_count(IO_FILE_STATS, 1);
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return store_errno(S_ISREG(st.st_mode) ? errno : EINVAL, "stat", name);
    }
    unsigned char buf[65536];
    bool cr = false;
    uint64_t bare = 0, total = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            enum store_status s = store_errno(errno, "read", name);
            close(fd);
            return s;
        }
        if (n == 0)
            break;
        crlf_count(buf, (size_t)n, &cr, &bare);
        total += (uint64_t)n;
    }
    close(fd);
    *file_size = total;
    *size = total + bare;
    *mtime = st.st_mtime;
    return STORE_OK;
}

/* --- keywords: sorted, unique (ASCII case-insensitively), space-separated --- */

bool keywords_valid(const char *const *keywords, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (!store_keyword_valid(keywords[i]))
            return false;
    return true;
}

static int kw_cmp(const void *a, const void *b)
{
    return ascii_casecmp(*(char *const *)a, *(char *const *)b);
}

char *keywords_apply(const char *current, enum store_flag_op op, const char *const *keywords,
                     size_t count)
{
    size_t cap = count + 1;
    for (const char *p = current; *p != '\0'; p++)
        cap += *p == ' ';
    char **list = xcalloc(cap + 1, sizeof *list);
    char *copy = xstrdup(current);
    size_t n = 0;
    if (op != STORE_FLAGS_REPLACE) {
        char *save = NULL;
        for (char *tok = strtok_r(copy, " ", &save); tok != NULL;
             tok = strtok_r(NULL, " ", &save)) {
            bool drop = false;
            for (size_t i = 0; op == STORE_FLAGS_REMOVE && i < count; i++)
                drop = drop || ascii_casecmp(tok, keywords[i]) == 0;
            if (!drop)
                list[n++] = tok;
        }
    }
    if (op != STORE_FLAGS_REMOVE)
        for (size_t i = 0; i < count && n < cap; i++)
            list[n++] = (char *)keywords[i];
    sort_items(list, n, sizeof *list, kw_cmp);
    size_t len = 1;
    for (size_t i = 0; i < n; i++)
        len += strlen(list[i]) + 1;
    char *out = xmalloc(len);
    size_t o = 0, kept = 0;
    for (size_t i = 0; i < n && kept < STORE_KEYWORDS_PER_MESSAGE; i++) {
        if (i > 0 && ascii_casecmp(list[i], list[i - 1]) == 0)
            continue;
        if (o > 0)
            out[o++] = ' ';
        size_t l = strlen(list[i]);
        memcpy(out + o, list[i], l);
        o += l;
        kept++;
    }
    out[o] = '\0';
    free(list);
    free(copy);
    return out;
}
