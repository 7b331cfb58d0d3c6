/* util/log.c - format a message and hand it to the application. */
#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>

void kvi_log(const kvi_logger *log, kv_log_level level, const char *fmt, ...)
{
    if (!log || !log->fn || level > log->level)
        return;
    char message[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    log->fn(level, message, log->ctx);
}
