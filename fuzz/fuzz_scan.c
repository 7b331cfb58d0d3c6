/* libFuzzer target for the scan's decoders (format/scan.h): a SCAN answer
 * a client handle turns into a page, a SCAN_RANGE answer a coordinator
 * merges, and the cursor text a user hands back.
 *
 * Input: byte 0 chooses (0 SCAN answer, 1 SCAN_RANGE answer, 2 cursor);
 * the rest is the body or the cursor's text.
 *
 * Invariants: nothing crashes or leaks; an accepted SCAN answer is a page
 * of at most KV_SCAN_MAX_LIMIT non-empty keys that encodes back to the same
 * bytes, with a cursor that decodes to a valid position; an accepted
 * SCAN_RANGE answer's items all lie inside the body, and their states
 * decode or are refused (as the coordinator does); an accepted cursor is a
 * valid position that encodes back to the same text, ignoring case. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <kv/kv.h>
#include "format/record.h"
#include "format/scan.h"
#include "format/state.h"
#include "format/value.h"

static void within(const uint8_t *base, size_t len, kvi_bytes b)
{
    if (b.len && (b.data < base || b.data + b.len > base + len))
        abort();
}

static void scan_answer(const uint8_t *body, size_t len)
{
    kv_scan_page *page = NULL;
    int rc = kvi_scan_page_decode(&page, body, len);
    if (rc != KV_OK) {
        if (page || (rc != KV_EIO && rc != KV_ENOMEM))
            abort();
        return;
    }
    size_t n = kvi_scan_page_count(page);
    if (n > KV_SCAN_MAX_LIMIT)
        abort();
    for (size_t i = 0; i < n; i++) {
        size_t klen;
        const unsigned char *key = kvi_scan_page_key(page, i, &klen);
        if (!key || klen == 0 || key[klen] != 0)
            abort();
        const kv_value *v = kvi_scan_page_value(page, i);
        if (v && kvi_value_version(v) != kvi_scan_page_version(page, i))
            abort();
    }
    const char *cursor = kvi_scan_page_cursor(page);
    if (cursor) {
        static unsigned char pos[KVI_SCAN_MAX_POSITION];
        size_t plen;
        if (kvi_scan_cursor_decode(pos, &plen, cursor) != KV_OK || plen == 0)
            abort();
    }
    kvi_buf again = {0};
    kvi_scan_page_encode(&again, page);
    if (again.failed || again.len != len || memcmp(again.data, body, len) != 0)
        abort();
    kvi_buf_free(&again);
    kvi_scan_page_free(page);
}

static void range_answer(const uint8_t *body, size_t len)
{
    uint32_t count;
    int more;
    kvi_reader items;
    if (kvi_scan_range_decode(body, len, &count, &more, &items) != 0)
        return;
    if (more != 0 && more != 1)
        abort();
    static kvi_state st;
    for (uint32_t i = 0; i < count; i++) {
        kvi_bytes key, state;
        kvi_scan_range_next(&items, &key, &state);
        if (items.failed || key.len == 0)
            abort();
        within(body, len, key);
        within(body, len, state);
        if (kvi_state_decode(&st, state.data, state.len, kvi_key_token(key.data, key.len)) ==
                KV_OK &&
            st.n > KVI_STATE_MAX_SIBLINGS)
            abort();
    }
}

static void cursor_text(const uint8_t *data, size_t len)
{
    char *text = malloc(len + 1);
    if (!text)
        return;
    memcpy(text, data, len);
    text[len] = 0;
    static unsigned char pos[KVI_SCAN_MAX_POSITION];
    size_t plen;
    if (kvi_scan_cursor_decode(pos, &plen, text) == KV_OK) {
        if (!kvi_scan_position_ok(plen) || plen != strlen(text) / 2)
            abort();
        kv_scan_page *page = kvi_scan_page_new();
        if (page && kvi_scan_page_set_next(page, pos, plen) == KV_OK) {
            const char *again = kvi_scan_page_cursor(page);
            if (plen ? !again || strcasecmp(again, text) != 0 : again != NULL)
                abort();
        }
        kvi_scan_page_free(page);
    }
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    switch (data[0] % 3) {
    case 0: scan_answer(data + 1, size - 1); break;
    case 1: range_answer(data + 1, size - 1); break;
    default: cursor_text(data + 1, size - 1); break;
    }
    return 0;
}
