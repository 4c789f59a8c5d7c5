/*
 * log.c - stderr logging (see log.h).
 */
#include "core/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static _Atomic int log_level = LOG_INFO;

static const char *const level_names[] = {"error", "warning", "info", "debug"};

void log_set_level(log_level_t level)
{
    atomic_store_explicit(&log_level, (int)level, memory_order_relaxed);
}

log_level_t log_get_level(void)
{
    return (log_level_t)atomic_load_explicit(&log_level, memory_order_relaxed);
}

__attribute__((format(printf, 2, 0))) static void log_vmsg(log_level_t level, const char *fmt, va_list ap)
{
    if ((int)level > atomic_load_explicit(&log_level, memory_order_relaxed))
        return;
    char line[1024];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ steerdns[%d]: %s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, (int)getpid(), level_names[level]);
    if (n < 0)
        return;
    size_t len = (size_t)n;
    if (len < sizeof(line) - 1) {
        int m = vsnprintf(line + len, sizeof(line) - len, fmt, ap);
        if (m > 0)
            len += (size_t)m;
    }
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    /* One write per line: lines of concurrent threads never interleave. */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

void log_msg(log_level_t level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, fmt, ap);
    va_end(ap);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void log_rl_init(log_rl_t *rl, uint32_t burst, uint32_t window_ms)
{
    memset(rl, 0, sizeof(*rl));
    rl->burst = burst;
    rl->window_ms = window_ms;
}

void log_rl_msg(log_rl_t *rl, log_level_t level, const char *fmt, ...)
{
    if ((int)level > atomic_load_explicit(&log_level, memory_order_relaxed))
        return;
    uint64_t now = now_ms();
    if (now - rl->window_start_ms >= rl->window_ms) {
        if (rl->dropped)
            log_msg(level, "(%llu similar messages suppressed)", (unsigned long long)rl->dropped);
        rl->window_start_ms = now;
        rl->used = 0;
        rl->dropped = 0;
    }
    if (rl->used >= rl->burst) {
        rl->dropped++;
        return;
    }
    rl->used++;
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, fmt, ap);
    va_end(ap);
}
