/*
 * log.h - logging to stderr, one line per message, with a rate limiter for
 * per-packet events.
 *
 * Every message is written with a single write(2), so lines from different
 * threads never interleave.  The level is set once at startup.  Per-packet
 * logging must go through a log_rl_t owned by the calling worker: a token
 * bucket that drops what exceeds its rate and reports how much it dropped.
 */
#ifndef STEERDNS_CORE_LOG_H
#define STEERDNS_CORE_LOG_H

#include <stdint.h>

typedef enum log_level {
    LOG_ERR = 0,
    LOG_WARNING = 1,
    LOG_INFO = 2,
    LOG_DEBUG = 3,
} log_level_t;

/* Set the most verbose level written (default LOG_INFO).  Call before any
 * thread starts. */
void log_set_level(log_level_t level);
log_level_t log_get_level(void);

/* Write one line "<time> steerdns[<pid>]: <level>: <message>" to stderr.
 * Any thread. */
void log_msg(log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_err(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

/* A rate limiter: at most `burst` messages per `window_ms`.  Owned by one
 * thread; not shared. */
typedef struct log_rl {
    uint64_t window_start_ms;
    uint32_t window_ms;
    uint32_t burst;
    uint32_t used;
    uint64_t dropped;
} log_rl_t;

void log_rl_init(log_rl_t *rl, uint32_t burst, uint32_t window_ms);

/* Log through the limiter.  When a new window opens after drops, one line
 * says how many messages were suppressed. */
void log_rl_msg(log_rl_t *rl, log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
