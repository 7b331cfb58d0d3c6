/* util/log.h - delivering log messages to the application's callback. */
#ifndef KVI_LOG_H
#define KVI_LOG_H

#include <kv/common.h>

/* A handle's log sink. Immutable after the handle is opened, so it is read
 * without locks from any thread. */
typedef struct kvi_logger {
    kv_log_fn fn;
    void *ctx;
    kv_log_level level;
} kvi_logger;

void kvi_log(const kvi_logger *log, kv_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
