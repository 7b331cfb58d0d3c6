/* Writes seed inputs for fuzz_record: valid records (a value, a tombstone,
 * an expiring value) behind their 8-byte token. Run once; the output is
 * committed in fuzz/corpus/record. */
#include <stdio.h>
#include <string.h>

#include "storage/record.h"
#include "util/endian.h"

static void emit(const char *dir, const char *name, const kvi_record *rec, uint64_t token)
{
    unsigned char buf[KVI_TOKEN_SIZE + 256];
    kvi_put_be64(buf, token);
    kvi_record_encode(buf + KVI_TOKEN_SIZE, rec, token);
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(buf, 1, KVI_TOKEN_SIZE + kvi_record_size(rec->value_len), f);
        fclose(f);
    }
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : ".";
    kvi_record value = {.version = 3, .write_ms = 5, .value = (const unsigned char *)"hello", .value_len = 5};
    emit(dir, "value", &value, kvi_key_token("k", 1));
    kvi_record tomb = {.version = 4, .write_ms = 900, .tombstone = 1};
    emit(dir, "tombstone", &tomb, kvi_key_token("k", 1));
    kvi_record expiring = {.version = 1, .expiry_ms = 999, .write_ms = 1, .value = (const unsigned char *)"", .value_len = 0};
    emit(dir, "expiring", &expiring, 42);
    return 0;
}
