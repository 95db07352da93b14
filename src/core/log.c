/* Operational log: formats one line per call and writes it with a single write(2) or syslog(3). */
#include "postern/log.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static enum log_target log_to = LOG_TARGET_STDERR;
static enum log_level log_max = LOG_LEVEL_INFO;

static const char *const LEVEL_NAMES[] = {"error", "warning", "info", "debug"};
static const int SYSLOG_PRIORITY[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};

static bool forced_syslog;

void log_force_syslog(void)
{
    forced_syslog = true;
}

void log_setup(enum log_target target, enum log_level level, const char *ident)
{
    if (forced_syslog)
        target = LOG_TARGET_SYSLOG;
    if (target == LOG_TARGET_SYSLOG && log_to != LOG_TARGET_SYSLOG)
        openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
    log_to = target;
    log_max = level;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if (level > log_max)
        return;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    /* Nothing from a client reaches the log unfiltered: no line breaks, no control bytes. */
    for (char *c = line; *c; c++)
        if ((unsigned char)*c < 0x20)
            *c = '?';
    if (log_to == LOG_TARGET_SYSLOG) {
        syslog(SYSLOG_PRIORITY[level], "%s", line);
        return;
    }
    char out[2200];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(out, sizeof(out), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ posternd[%d] %s: %s\n",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, (int)getpid(), LEVEL_NAMES[level], line);
    if (n > (int)sizeof(out))
        n = (int)sizeof(out);
    if (write(STDERR_FILENO, out, (size_t)n) < 0) {
        /* nowhere left to report it */
    }
}
