/* Writes seed inputs for the fuzz targets; the output is committed.
 *   fuzz_make_corpus fuzz/corpus/record        records behind their token
 *   fuzz_make_corpus frame fuzz/corpus/frame   one request frame per opcode
 *   fuzz_make_corpus state fuzz/corpus/state   a clock with two siblings */
#include <stdio.h>
#include <string.h>

#include "cluster/state.h"
#include "net/frame.h"
#include "net/message.h"
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

static void emit_frame(const char *dir, const char *name, const kvi_request *req,
                       const kvi_batch_item *items, uint32_t n_items)
{
    kvi_buf b = {0};
    kvi_frame_begin(&b);
    kvi_request_encode(&b, req);
    for (uint32_t i = 0; i < n_items; i++)
        kvi_batch_item_encode(&b, &items[i]);
    kvi_frame_finish(&b, 0, req->opcode, 0, 0, 1);
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(b.data, 1, b.len, f);
        fclose(f);
    }
    kvi_buf_free(&b);
}

static kvi_bytes text(const char *s)
{
    kvi_bytes b = {(const unsigned char *)s, strlen(s)};
    return b;
}

/* Seeds for fuzz_frame: one request frame of each opcode. */
static void frame_corpus(const char *dir)
{
    kvi_request ping = {.opcode = KVI_OP_PING};
    emit_frame(dir, "ping", &ping, NULL, 0);
    kvi_request get = {.opcode = KVI_OP_GET, .consistency = 2, .key = text("user:1")};
    emit_frame(dir, "get", &get, NULL, 0);
    kvi_request put = {.opcode = KVI_OP_PUT, .ttl_s = 60, .key = text("k"),
                       .value = text("value"), .context = text("")};
    emit_frame(dir, "put", &put, NULL, 0);
    kvi_request del = {.opcode = KVI_OP_DELETE, .key = text("k")};
    emit_frame(dir, "delete", &del, NULL, 0);
    kvi_request cas = {.opcode = KVI_OP_CAS, .expected_version = 3, .key = text("k"),
                       .value = text("v")};
    emit_frame(dir, "cas", &cas, NULL, 0);
    kvi_request batch = {.opcode = KVI_OP_BATCH, .batch_count = 2};
    kvi_batch_item items[2] = {{1, 0, text("a"), text("1")}, {2, 0, text("b"), text("")}};
    emit_frame(dir, "batch", &batch, items, 2);
    kvi_request hint = {.opcode = KVI_OP_HINT, .key = text("k"), .value = text("state"),
                        .context = text("n2")};
    emit_frame(dir, "hint", &hint, NULL, 0);
}

/* Seeds for fuzz_state: a state with a value and a tombstone sibling. */
static void state_corpus(const char *dir)
{
    static kvi_state s;
    kvi_state_init(&s);
    kvi_sibling v = {.value = (const unsigned char *)"hello", .value_len = 5, .write_ms = 7};
    kvi_state_write(&s, NULL, "n1", &v);
    kvi_sibling t = {.tombstone = 1, .write_ms = 8};
    kvi_state_write(&s, NULL, "n2", &t);
    kvi_buf b = {0};
    unsigned char token[8] = {0, 0, 0, 0, 0, 0, 0, 42};
    kvi_buf_raw(&b, token, 8);
    kvi_state_encode(&b, &s, 42);
    char path[512];
    snprintf(path, sizeof path, "%s/two-siblings", dir);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(b.data, 1, b.len, f);
        fclose(f);
    }
    kvi_buf_free(&b);
}

int main(int argc, char **argv)
{
    if (argc > 2 && strcmp(argv[1], "state") == 0) {
        state_corpus(argv[2]);
        return 0;
    }
    if (argc > 2 && strcmp(argv[1], "frame") == 0) {
        frame_corpus(argv[2]);
        return 0;
    }
    const char *dir = argc > 1 ? argv[1] : ".";
    kvi_record value = {.version = 3, .write_ms = 5, .value = (const unsigned char *)"hello", .value_len = 5};
    emit(dir, "value", &value, kvi_key_token("k", 1));
    kvi_record tomb = {.version = 4, .write_ms = 900, .tombstone = 1};
    emit(dir, "tombstone", &tomb, kvi_key_token("k", 1));
    kvi_record expiring = {.version = 1, .expiry_ms = 999, .write_ms = 1, .value = (const unsigned char *)"", .value_len = 0};
    emit(dir, "expiring", &expiring, 42);
    return 0;
}
