/* net/http_json.h - the pure parts of the HTTP API: percent-decoding, base64, UTF-8 checks, JSON output and request-body parsers (no I/O, so they can be fuzzed). */
#ifndef KVI_HTTP_JSON_H
#define KVI_HTTP_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include <kv/kv.h>
#include "format/message.h"

/* Largest integer a JSON number carries exactly (2^53): cJSON parses numbers
 * as doubles, so larger versions or TTLs could not be told apart. */
#define KVI_HTTP_JSON_MAX_INT 9007199254740992ull

/* ------------------------------------------------------- percent-decoding */

/**
 * kvi_http_percent_decode - decode a percent-encoded URL component.
 *
 * Binary-safe: "%00" gives a NUL byte, and the length is returned, never a
 * terminator. Every other byte is copied as is ('+' stays '+': it means a
 * space only in form bodies, not in paths).
 *
 * @param out      receives the bytes; room for in_len bytes is enough, since
 *                 decoding never lengthens
 * @param out_len  receives the number of bytes written
 * @param in       the encoded text (not NUL-terminated)
 * @param in_len   its length
 * @return 0, or -1 when a '%' is not followed by two hex digits (out and
 *         out_len are then unspecified).
 */
int kvi_http_percent_decode(unsigned char *out, size_t *out_len, const char *in,
                            size_t in_len);

/* ----------------------------------------------------------------- base64 */

/**
 * kvi_http_base64_len - length of the base64 text (RFC 4648, standard
 * alphabet, with '=' padding) of n bytes.
 */
size_t kvi_http_base64_len(size_t n);

/**
 * kvi_http_base64_encode - encode n bytes as padded standard base64.
 * @param out  room for kvi_http_base64_len(n) bytes; no NUL is written
 */
void kvi_http_base64_encode(char *out, const unsigned char *in, size_t n);

/**
 * kvi_http_base64_decode - decode standard-alphabet base64.
 *
 * Padding is optional, but when present it must complete the last group.
 * Whitespace, the URL-safe alphabet and bits left over in the last character
 * are all rejected, so every byte string has exactly one accepted text
 * (padded or not). Decoding in place (out == in) is allowed: the output
 * never overtakes the input.
 *
 * @param out      room for in_len / 4 * 3 + 2 bytes
 * @param out_len  receives the number of bytes written
 * @return 0, or -1 for invalid base64.
 */
int kvi_http_base64_decode(unsigned char *out, size_t *out_len, const char *in,
                           size_t in_len);

/* ------------------------------------------------------------------ UTF-8 */

/**
 * kvi_http_utf8_valid_prefix - strict UTF-8 validation (RFC 3629): the
 * length of the longest prefix of s made of whole, well-formed sequences,
 * so n exactly when all of s is valid, and otherwise the offset of the
 * first byte that does not start one. Refused: bytes C0, C1 and F5..FF,
 * stray continuation bytes, truncated sequences, overlong forms, UTF-16
 * surrogates (U+D800..U+DFFF) and code points above U+10FFFF. NUL is
 * valid UTF-8 (U+0000).
 */
size_t kvi_http_utf8_valid_prefix(const unsigned char *s, size_t n);

/**
 * kvi_http_is_text - whether bytes can travel as a JSON string as they are:
 * well-formed UTF-8 (no overlong forms, surrogates or code points above
 * U+10FFFF) without NUL bytes (cJSON strings are NUL-terminated, so a value
 * with a NUL could not come back through a JSON parser unchanged).
 * @return 1 or 0.
 */
int kvi_http_is_text(const unsigned char *s, size_t n);

/* ------------------------------------------------------------ JSON output */

/**
 * kvi_http_json_string - append s as a quoted JSON string, escaping '"',
 * '\\' and control characters. s must be text (kvi_http_is_text); other
 * bytes are copied as they are.
 */
void kvi_http_json_string(kvi_buf *b, const void *s, size_t n);

/**
 * kvi_http_json_message - append a human-readable message as a quoted JSON
 * string, replacing every byte outside printable ASCII with '?', so that
 * a message quoting client input is always valid JSON.
 */
void kvi_http_json_message(kvi_buf *b, const char *msg);

/**
 * kvi_http_json_base64 - append the base64 of n bytes as a quoted JSON
 * string.
 */
void kvi_http_json_base64(kvi_buf *b, const void *data, size_t n);

/** kvi_http_json_u64 - append v as a JSON number (exact: no doubles). */
void kvi_http_json_u64(kvi_buf *b, uint64_t v);

/** kvi_http_json_raw - append a NUL-terminated literal (JSON punctuation). */
void kvi_http_json_raw(kvi_buf *b, const char *s);

/* ----------------------------------------------------- request-body parsers */

/*
 * The parsers take the raw body (any bytes, not NUL-terminated) and return
 * KV_OK, KV_EINVAL for a body the client got wrong (not UTF-8, malformed
 * JSON, wrong types, missing fields, bad base64; err says what, naming the
 * field or the first byte that is not UTF-8 and, for batches, the
 * operation's index), KV_ETOOBIG for a batch over max_ops
 * operations, or KV_ENOMEM. On failure nothing needs freeing; on success
 * the caller frees the result with the matching _free function.
 *
 * Strings point into the parsed cJSON tree (base64 is decoded in place), so
 * a 1 MiB value is never copied. Sizes are not checked against the store's
 * limits here: kv_put and kv_batch_execute do that, with the same error
 * codes.
 */

/** A parsed PUT or CAS body. */
typedef struct kvi_http_write_body {
    cJSON *root;                  /* owns the bytes below */
    const unsigned char *value;   /* "value" (PUT) or "newValue" (CAS) */
    size_t value_len;
    uint64_t ttl_s;               /* 0 when absent */
    uint64_t expected_version;    /* CAS only */
    const unsigned char *context; /* PUT: "context" (base64 in the JSON), decoded */
    size_t context_len;           /* 0 when absent */
} kvi_http_write_body;

/** One operation of a parsed batch body. */
typedef struct kvi_http_batch_item {
    kv_batch_op kind;
    int base64;                   /* "encoding": "base64" (key and value) */
    const unsigned char *key;
    size_t key_len;
    const unsigned char *value;   /* PUT only */
    size_t value_len;
    uint64_t ttl_s;               /* PUT only; 0 when absent */
} kvi_http_batch_item;

/** A parsed batch body. */
typedef struct kvi_http_batch_body {
    cJSON *root;                  /* owns the keys and values */
    kvi_http_batch_item *items;
    size_t count;
} kvi_http_batch_body;

/**
 * kvi_http_parse_put - parse {"value": "...", "ttl": N?, "encoding": E?,
 * "context": C?}, C being the base64 "context" of an earlier read.
 * E is "base64" or "utf-8"; ttl is a non-negative integer (null or absent:
 * no expiry).
 * @param err      receives a message on failure; err_len bytes, >= 1
 * @return KV_OK, KV_EINVAL or KV_ENOMEM.
 */
int kvi_http_parse_put(kvi_http_write_body *out, const char *body, size_t len,
                       char *err, size_t err_len);

/**
 * kvi_http_parse_cas - parse {"expectedVersion": N, "newValue": "...",
 * "ttl": N?, "encoding": E?}; expectedVersion 0 means "only if absent".
 * @return as kvi_http_parse_put.
 */
int kvi_http_parse_cas(kvi_http_write_body *out, const char *body, size_t len,
                       char *err, size_t err_len);

/** kvi_http_write_body_free - release a parsed PUT or CAS body. */
void kvi_http_write_body_free(kvi_http_write_body *w);

/**
 * kvi_http_parse_batch - parse {"operations": [{"op": "PUT"|"GET"|"DELETE",
 * "key": "...", "value": "..." (PUT), "ttl": N? (PUT), "encoding": E?}, ...]}.
 * op is matched ignoring ASCII case. An empty list is KV_EINVAL.
 * @param max_ops  most operations accepted; more gives KV_ETOOBIG
 * @return KV_OK, KV_EINVAL, KV_ETOOBIG or KV_ENOMEM.
 */
int kvi_http_parse_batch(kvi_http_batch_body *out, const char *body, size_t len,
                         size_t max_ops, char *err, size_t err_len);

/** kvi_http_batch_body_free - release a parsed batch body. */
void kvi_http_batch_body_free(kvi_http_batch_body *b);

/**
 * kvi_http_parse_backup - parse {"dir": "/absolute/path"} (POST
 * /v1/admin/backup) into dir, NUL-terminated. Only the JSON is checked
 * here; the path itself by kvi_check_backup_dir.
 * @param dir      receives the path; cap bytes, a longer path is KV_EINVAL
 * @return KV_OK, KV_EINVAL or KV_ENOMEM.
 */
int kvi_http_parse_backup(char *dir, size_t cap, const char *body, size_t len, char *err,
                          size_t err_len);

#endif
