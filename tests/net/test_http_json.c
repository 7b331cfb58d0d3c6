/* The pure helpers of the HTTP API: percent-decoding, base64, the UTF-8 check, JSON output, and the PUT/CAS/batch body parsers on good and malformed input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <cJSON.h>

#include <kv/kv.h>
#include "net/http_json.h"

/* Decodes s; returns the length or -1. */
static long pct(unsigned char *out, const char *s)
{
    size_t n;
    return kvi_http_percent_decode(out, &n, s, strlen(s)) == 0 ? (long)n : -1;
}

static void percent_decoding(void **state)
{
    (void)state;
    unsigned char out[64];
    assert_int_equal(pct(out, "plain-key_1.~"), 13);
    assert_memory_equal(out, "plain-key_1.~", 13);
    assert_int_equal(pct(out, "a%20b%2Fc"), 5);
    assert_memory_equal(out, "a b/c", 5);
    /* %00 is a byte like any other: the length says where the key ends. */
    assert_int_equal(pct(out, "a%00b%ff%FE"), 5);
    assert_memory_equal(out, "a\0b\xff\xfe", 5);
    /* '+' is not a space in a path. */
    assert_int_equal(pct(out, "a+b"), 3);
    assert_memory_equal(out, "a+b", 3);
    assert_int_equal(pct(out, ""), 0);
    const char *bad[] = {"%", "%4", "a%", "%zz", "%g0", "%0g", "ab%2", "%%", "%-1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(pct(out, bad[i]), -1);
    /* In place, as the server decodes keys. */
    char buf[] = "x%41%42y";
    size_t n;
    assert_int_equal(kvi_http_percent_decode((unsigned char *)buf, &n, buf, strlen(buf)), 0);
    assert_int_equal(n, 4);
    assert_memory_equal(buf, "xABy", 4);
}

static void base64_round_trip(void **state)
{
    (void)state;
    unsigned char in[300], dec[300];
    char enc[404];
    for (size_t i = 0; i < sizeof in; i++)
        in[i] = (unsigned char)(i * 37 + 11);
    for (size_t n = 0; n <= sizeof in; n++) {
        size_t len = kvi_http_base64_len(n);
        assert_int_equal(len % 4, 0);
        kvi_http_base64_encode(enc, in, n);
        size_t out;
        assert_int_equal(kvi_http_base64_decode(dec, &out, enc, len), 0);
        assert_int_equal(out, n);
        if (n)
            assert_memory_equal(dec, in, n);
        /* Without the padding too. */
        size_t unpadded = len;
        while (unpadded && enc[unpadded - 1] == '=')
            unpadded--;
        assert_int_equal(kvi_http_base64_decode(dec, &out, enc, unpadded), 0);
        assert_int_equal(out, n);
    }
    kvi_http_base64_encode(enc, (const unsigned char *)"hello", 5);
    assert_memory_equal(enc, "aGVsbG8=", 8);
    /* In place. */
    char buf[] = "aGVsbG8gd29ybGQ=";
    size_t out;
    assert_int_equal(kvi_http_base64_decode((unsigned char *)buf, &out, buf, strlen(buf)), 0);
    assert_int_equal(out, 11);
    assert_memory_equal(buf, "hello world", 11);
}

static void base64_invalid(void **state)
{
    (void)state;
    unsigned char out[64];
    size_t n;
    const char *bad[] = {
        "a",         /* one character cannot hold a byte */
        "aGVsbG8==", /* padding must complete the group */
        "aGVs=G8=",  /* '=' inside */
        "aGV sbG8=", /* whitespace */
        "aGV\nbG8=",
        "aGVsbG8-",  /* URL-safe alphabet */
        "a_Vs",
        "QR==",      /* leftover bits set */
        "QUJ=",
        "====",
        "=",
        "ab=c",
        "\xc3\xa9\xc3\xa9",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (kvi_http_base64_decode(out, &n, bad[i], strlen(bad[i])) != -1)
            fail_msg("\"%s\" was accepted", bad[i]);
    assert_int_equal(kvi_http_base64_decode(out, &n, "aGVsbG8", 7), 0);
    assert_int_equal(n, 5);
    assert_int_equal(kvi_http_base64_decode(out, &n, "", 0), 0);
    assert_int_equal(n, 0);
    assert_int_equal(kvi_http_base64_decode(out, &n, "QQ==", 4), 0);
    assert_int_equal(n, 1);
}

static int text(const char *s, size_t n)
{
    return kvi_http_is_text((const unsigned char *)s, n);
}

static void utf8_check(void **state)
{
    (void)state;
    assert_true(text("", 0));
    assert_true(text("plain ascii\n", 12));
    assert_true(text("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14));
    assert_true(text("\xef\xbf\xbf\xf4\x8f\xbf\xbf", 7));   /* U+FFFF, U+10FFFF */
    assert_false(text("a\0b", 3));                          /* NUL */
    assert_false(text("\xff", 1));
    assert_false(text("\xc3", 1));                           /* truncated */
    assert_false(text("\xc0\xaf", 2));                       /* overlong */
    assert_false(text("\xe0\x80\xaf", 3));                   /* overlong */
    assert_false(text("\xed\xa0\x80", 3));                   /* surrogate */
    assert_false(text("\xf4\x90\x80\x80", 4));               /* > U+10FFFF */
    assert_false(text("\xe2\x82", 2));
    assert_false(text("\xe2\x28\xa1", 3));
    assert_false(text("\x80", 1));
}

/* ------------------------------------------------------- strict UTF-8 */

static size_t valid(const char *s, size_t n)
{
    return kvi_http_utf8_valid_prefix((const unsigned char *)s, n);
}

/* A reference decoder written the other way round: take the length from the
 * lead byte's leading ones, gather the bits, then refuse by value (overlong
 * for its length, a surrogate, past U+10FFFF). Returns the valid prefix. */
static size_t reference_prefix(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3
                   : (c & 0xf8) == 0xf0 ? 4 : 0;
        if (len == 0 || n - i < len)
            return i;
        uint32_t cp = len == 1 ? c : c & (0x7fu >> len);
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return i;
            cp = cp << 6 | (s[i + k] & 0x3fu);
        }
        static const uint32_t least[] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < least[len] || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
            return i;
        i += len;
    }
    return n;
}

/* Encodes cp in `len` bytes, overlong when len is more than it needs. */
static size_t encode_as(unsigned char *out, uint32_t cp, size_t len)
{
    if (len == 1) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    static const unsigned char lead[] = {0, 0, 0xc0, 0xe0, 0xf0};
    for (size_t k = len - 1; k > 0; k--, cp >>= 6)
        out[k] = (unsigned char)(0x80 | (cp & 0x3f));
    out[0] = (unsigned char)(lead[len] | cp);
    return len;
}

static size_t needed(uint32_t cp)
{
    return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

static void utf8_validator(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t n, prefix;
    } cases[] = {
        {"", 0, 0},
        {"a\0b", 3, 3},                          /* NUL is UTF-8 (is_text refuses it) */
        {"\x7f", 1, 1},
        {"\xc2\x80", 2, 2},                      /* U+0080, the least 2-byte */
        {"\xdf\xbf", 2, 2},                      /* U+07FF */
        {"\xe0\xa0\x80", 3, 3},                  /* U+0800 */
        {"\xed\x9f\xbf", 3, 3},                  /* U+D7FF, just below the surrogates */
        {"\xee\x80\x80", 3, 3},                  /* U+E000, just above */
        {"\xef\xbf\xbf", 3, 3},                  /* U+FFFF */
        {"\xf0\x90\x80\x80", 4, 4},              /* U+10000 */
        {"\xf4\x8f\xbf\xbf", 4, 4},              /* U+10FFFF, the last */
        /* overlong forms */
        {"\xc0\x80", 2, 0},                      /* NUL in two bytes (Java's) */
        {"\xc0\xaf", 2, 0},                      /* '/' in two bytes */
        {"\xc1\xbf", 2, 0},
        {"\xe0\x80\xaf", 3, 0},                  /* '/' in three bytes */
        {"\xe0\x9f\xbf", 3, 0},                  /* U+07FF in three bytes */
        {"\xf0\x80\x80\xaf", 4, 0},              /* '/' in four bytes */
        {"\xf0\x8f\xbf\xbf", 4, 0},              /* U+FFFF in four bytes */
        {"\xf8\x80\x80\x80\xaf", 5, 0},          /* five and six bytes: never */
        {"\xfc\x80\x80\x80\x80\xaf", 6, 0},
        /* surrogates, alone and paired (CESU-8) */
        {"\xed\xa0\x80", 3, 0},                  /* U+D800 */
        {"\xed\xbf\xbf", 3, 0},                  /* U+DFFF */
        {"\xed\xa0\xbd\xed\xb8\x80", 6, 0},      /* U+1F600 as a surrogate pair */
        /* above U+10FFFF */
        {"\xf4\x90\x80\x80", 4, 0},              /* U+110000 */
        {"\xf5\x80\x80\x80", 4, 0},
        {"\xf7\xbf\xbf\xbf", 4, 0},              /* U+1FFFFF */
        {"\xfe", 1, 0},
        {"\xff", 1, 0},
        /* stray, missing and truncated continuation bytes */
        {"\x80", 1, 0},
        {"\xbf", 1, 0},
        {"a\xc3", 2, 1},                         /* cut at the end of the input */
        {"ab\xe2\x82", 4, 2},
        {"\xf0\x9f\x98", 3, 0},
        {"\xe2\x28\xa1", 3, 0},
        {"\xc3\xa9\xc3\x28", 4, 2},
        {"\xf0\x9f\x98\x80\xf0\x9f\x98\x28", 8, 4},
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 ok", 17, 17},
        {"caf\xe9", 4, 3},                       /* Latin-1 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t got = valid(cases[i].s, cases[i].n);
        if (got != cases[i].prefix)
            fail_msg("case %zu: valid prefix %zu, expected %zu", i, got, cases[i].prefix);
        assert_int_equal(reference_prefix((const unsigned char *)cases[i].s, cases[i].n),
                         cases[i].prefix);
    }

    /* Every code point in its shortest form is valid, and in every longer
     * form is refused; every surrogate is refused. */
    unsigned char buf[8];
    for (uint32_t cp = 0; cp <= 0x10ffff; cp++) {
        size_t len = needed(cp);
        size_t n = encode_as(buf, cp, len);
        int surrogate = cp >= 0xd800 && cp <= 0xdfff;
        if ((kvi_http_utf8_valid_prefix(buf, n) == n) == surrogate)
            fail_msg("U+%04X in %zu bytes", (unsigned)cp, len);
        for (size_t longer = len + 1; longer <= 4; longer++) {
            n = encode_as(buf, cp, longer);
            if (kvi_http_utf8_valid_prefix(buf, n) != 0)
                fail_msg("U+%04X overlong in %zu bytes was accepted", (unsigned)cp, longer);
        }
    }
    /* Past U+10FFFF in four bytes, up to what four bytes can hold. */
    for (uint32_t cp = 0x110000; cp <= 0x1fffff; cp += 0x1001) {
        size_t n = encode_as(buf, cp, 4);
        assert_int_equal(kvi_http_utf8_valid_prefix(buf, n), 0);
    }

    /* Every sequence of one, two and three bytes agrees with the reference
     * (after a valid 'a', so that the prefix is tested too), and four-byte
     * ones for every first two bytes with edge values after them. */
    buf[0] = 'a';
    for (unsigned a = 0; a < 256; a++) {
        buf[1] = (unsigned char)a;
        assert_int_equal(kvi_http_utf8_valid_prefix(buf, 2), reference_prefix(buf, 2));
        for (unsigned b = 0; b < 256; b++) {
            buf[2] = (unsigned char)b;
            assert_int_equal(kvi_http_utf8_valid_prefix(buf, 3), reference_prefix(buf, 3));
            for (unsigned c = 0; c < 256; c++) {
                buf[3] = (unsigned char)c;
                if (kvi_http_utf8_valid_prefix(buf, 4) != reference_prefix(buf, 4))
                    fail_msg("a %02x %02x %02x", a, b, c);
            }
            static const unsigned char edge[] = {0x00, 0x41, 0x7f, 0x80, 0xbf, 0xc0, 0xff};
            for (size_t c = 0; c < sizeof edge; c++) {
                for (size_t d = 0; d < sizeof edge; d++) {
                    unsigned char four[4] = {(unsigned char)a, (unsigned char)b, edge[c], edge[d]};
                    if (kvi_http_utf8_valid_prefix(four, 4) != reference_prefix(four, 4))
                        fail_msg("%02x %02x %02x %02x", a, b, edge[c], edge[d]);
                }
            }
        }
    }
}

/* JSON output parses back to the same bytes through cJSON. */
static void json_output(void **state)
{
    (void)state;
    kvi_buf b = {0};
    const char s[] = "quote\" back\\ nl\n tab\t ctl\x01\x1f caf\xc3\xa9 /";
    kvi_http_json_raw(&b, "{\"s\":");
    kvi_http_json_string(&b, s, sizeof s - 1);
    kvi_http_json_raw(&b, ",\"b\":");
    kvi_http_json_base64(&b, "\0\1\2\xff", 4);
    kvi_http_json_raw(&b, ",\"n\":");
    kvi_http_json_u64(&b, 18446744073709551615ull);
    kvi_http_json_raw(&b, ",\"m\":");
    kvi_http_json_message(&b, "bad \xff byte \"q\"");
    kvi_http_json_raw(&b, "}");
    assert_false(b.failed);
    cJSON *root = cJSON_ParseWithLength((const char *)b.data, b.len);
    assert_non_null(root);
    cJSON *f = cJSON_GetObjectItemCaseSensitive(root, "s");
    assert_true(cJSON_IsString(f));
    assert_string_equal(f->valuestring, s);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(root, "b")->valuestring, "AAEC/w==");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(root, "m")->valuestring, "bad ? byte \"q\"");
    assert_non_null(strstr((const char *)b.data, "18446744073709551615"));
    cJSON_Delete(root);
    kvi_buf_free(&b);
}

/* --------------------------------------------------------------- parsers */

static int put(kvi_http_write_body *w, const char *body)
{
    char err[256];
    err[0] = 0;
    int rc = kvi_http_parse_put(w, body, strlen(body), err, sizeof err);
    if (rc != KV_OK) {
        assert_non_null(w);
        assert_null(w->root);
        assert_true(err[0] != 0); /* every failure says why */
    }
    return rc;
}

static int cas(kvi_http_write_body *w, const char *body)
{
    char err[256];
    err[0] = 0;
    int rc = kvi_http_parse_cas(w, body, strlen(body), err, sizeof err);
    if (rc != KV_OK)
        assert_true(err[0] != 0);
    return rc;
}

static void parse_put_good(void **state)
{
    (void)state;
    kvi_http_write_body w;
    assert_int_equal(put(&w, "{\"value\": \"data\", \"ttl\": 3600}"), KV_OK);
    assert_int_equal(w.value_len, 4);
    assert_memory_equal(w.value, "data", 4);
    assert_int_equal(w.ttl_s, 3600);
    kvi_http_write_body_free(&w);

    assert_int_equal(put(&w, " {\"value\":\"\"} \n"), KV_OK);
    assert_int_equal(w.value_len, 0);
    assert_int_equal(w.ttl_s, 0);
    kvi_http_write_body_free(&w);

    assert_int_equal(put(&w, "{\"value\":\"AAH/\",\"encoding\":\"base64\",\"ttl\":null,\"extra\":[1]}"), KV_OK);
    assert_int_equal(w.value_len, 3);
    assert_memory_equal(w.value, "\0\1\xff", 3);
    kvi_http_write_body_free(&w);

    assert_int_equal(put(&w, "{\"value\":\"caf\\u00e9 \\\"q\\\"\",\"encoding\":\"utf-8\",\"ttl\":1e2}"), KV_OK);
    assert_int_equal(w.value_len, 9);
    assert_memory_equal(w.value, "caf\xc3\xa9 \"q\"", 9);
    assert_int_equal(w.ttl_s, 100);
    kvi_http_write_body_free(&w);
    kvi_http_write_body_free(NULL);
}

static void parse_put_bad(void **state)
{
    (void)state;
    kvi_http_write_body w;
    const char *bad[] = {
        "",
        "   ",
        "{",
        "{\"value\": \"x\"",
        "{\"value\": \"x\"} trailing",
        "{\"value\": \"x\"}{}",
        "[\"value\"]",
        "\"value\"",
        "null",
        "{}",
        "{\"Value\": \"x\"}",                   /* names are case-sensitive */
        "{\"value\": 5}",
        "{\"value\": null}",
        "{\"value\": true}",
        "{\"value\": [\"x\"]}",
        "{\"value\": {\"a\": 1}}",
        "{\"value\": \"x\", \"ttl\": \"60\"}",
        "{\"value\": \"x\", \"ttl\": -1}",
        "{\"value\": \"x\", \"ttl\": 1.5}",
        "{\"value\": \"x\", \"ttl\": 1e300}",
        "{\"value\": \"x\", \"ttl\": 9007199254740993e3}",
        "{\"value\": \"x\", \"ttl\": true}",
        "{\"value\": \"x\", \"encoding\": \"hex\"}",
        "{\"value\": \"x\", \"encoding\": 64}",
        "{\"value\": \"x!\", \"encoding\": \"base64\"}",
        "{\"value\": \"a\\u0000b\"}",           /* would be cut at the NUL */
        "{\"value\": \"x\\\"}",
        "{\"value\": 'x'}",
        "{value: \"x\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = put(&w, bad[i]);
        if (rc != KV_EINVAL)
            fail_msg("body %zu (%s) gave %d", i, bad[i], rc);
    }
    /* A raw NUL byte inside the body. */
    char err[128];
    assert_int_equal(kvi_http_parse_put(&w, "{\"value\":\"a\0b\"}", 15, err, sizeof err), KV_EINVAL);
    /* Bytes that are not UTF-8 anywhere in the body: refused, saying where
     * (RFC 8259 section 8.1), rather than stored as they are. */
    static const struct {
        const char *body;
        size_t at;
    } not_utf8[] = {
        {"{\"value\": \"caf\xe9\"}", 14},                  /* Latin-1 */
        {"{\"value\": \"\xc0\xaf\"}", 11},                 /* overlong '/' */
        {"{\"value\": \"\xe0\x80\xaf\"}", 11},             /* overlong '/' */
        {"{\"value\": \"\xf0\x80\x80\xaf\"}", 11},         /* overlong '/' */
        {"{\"value\": \"\xc0\x80\"}", 11},                 /* overlong NUL */
        {"{\"value\": \"\xed\xa0\x80\"}", 11},             /* surrogate */
        {"{\"value\": \"\xf4\x90\x80\x80\"}", 11},         /* above U+10FFFF */
        {"{\"value\": \"\xff\xfe\"}", 11},
        {"{\"value\": \"ok\"}\x80", 15},                   /* after the object */
        {"{\"value\": \"ok\", \"\xe9\": 1}", 17},          /* in a name */
        {"{\"value\": \"x\xe2\x82\"}", 12},                /* truncated */
    };
    for (size_t i = 0; i < sizeof not_utf8 / sizeof not_utf8[0]; i++) {
        const char *b = not_utf8[i].body;
        err[0] = 0;
        assert_int_equal(kvi_http_parse_put(&w, b, strlen(b), err, sizeof err), KV_EINVAL);
        assert_null(w.root);
        char at[32];
        snprintf(at, sizeof at, "at byte %zu", not_utf8[i].at);
        if (!strstr(err, "not valid UTF-8") || !strstr(err, at))
            fail_msg("body %zu: \"%s\"", i, err);
    }
    /* A lone surrogate written as an escape is refused too (by cJSON)... */
    assert_int_equal(put(&w, "{\"value\": \"\\ud800\"}"), KV_EINVAL);
    assert_int_equal(put(&w, "{\"value\": \"\\udc00\"}"), KV_EINVAL);
    assert_int_equal(put(&w, "{\"value\": \"\\ud800\\u0041\"}"), KV_EINVAL);
    /* ... while a pair is one code point. */
    assert_int_equal(put(&w, "{\"value\": \"\\ud83d\\ude00\"}"), KV_OK);
    assert_int_equal(w.value_len, 4);
    assert_memory_equal(w.value, "\xf0\x9f\x98\x80", 4);
    kvi_http_write_body_free(&w);
    /* CAS and batch bodies are checked alike. */
    assert_int_equal(cas(&w, "{\"expectedVersion\": 0, \"newValue\": \"\xc1\xbf\"}"), KV_EINVAL);
    kvi_http_batch_body bb;
    const char *bad_batch = "{\"operations\": [{\"op\": \"GET\", \"key\": \"k\xff\"}]}";
    char berr[256];
    assert_int_equal(kvi_http_parse_batch(&bb, bad_batch, strlen(bad_batch), 10, berr, sizeof berr),
                     KV_EINVAL);
    assert_non_null(strstr(berr, "not valid UTF-8"));
    /* Escaped backslash followed by u0000 is the text "\u0000", not a NUL. */
    assert_int_equal(put(&w, "{\"value\": \"\\\\u0000\"}"), KV_OK);
    assert_int_equal(w.value_len, 6);
    assert_memory_equal(w.value, "\\u0000", 6);
    kvi_http_write_body_free(&w);
    /* Deep nesting is refused by cJSON's limit, not the stack. */
    size_t depth = 100000;
    char *deep = malloc(depth * 2 + 1);
    assert_non_null(deep);
    memset(deep, '[', depth);
    memset(deep + depth, ']', depth);
    deep[depth * 2] = 0;
    assert_int_equal(put(&w, deep), KV_EINVAL);
    free(deep);
}

static void parse_cas_body(void **state)
{
    (void)state;
    kvi_http_write_body w;
    assert_int_equal(cas(&w, "{\"expectedVersion\": 5, \"newValue\": \"x\"}"), KV_OK);
    assert_int_equal(w.expected_version, 5);
    assert_int_equal(w.value_len, 1);
    assert_int_equal(w.ttl_s, 0);
    kvi_http_write_body_free(&w);
    assert_int_equal(cas(&w, "{\"expectedVersion\": 0, \"newValue\": \"eA==\", \"encoding\": \"base64\", \"ttl\": 7}"),
                     KV_OK);
    assert_int_equal(w.expected_version, 0);
    assert_int_equal(w.ttl_s, 7);
    assert_memory_equal(w.value, "x", 1);
    kvi_http_write_body_free(&w);
    assert_int_equal(cas(&w, "{\"expectedVersion\": 9007199254740992, \"newValue\": \"\"}"), KV_OK);
    assert_int_equal(w.expected_version, 9007199254740992ull);
    kvi_http_write_body_free(&w);

    const char *bad[] = {
        "{\"newValue\": \"x\"}",
        "{\"expectedVersion\": 1}",
        "{\"expectedVersion\": null, \"newValue\": \"x\"}",
        "{\"expectedVersion\": \"1\", \"newValue\": \"x\"}",
        "{\"expectedVersion\": -1, \"newValue\": \"x\"}",
        "{\"expectedVersion\": 1.25, \"newValue\": \"x\"}",
        "{\"expectedVersion\": 1e20, \"newValue\": \"x\"}",
        "{\"expectedVersion\": 1, \"newValue\": 2}",
        "{\"expectedVersion\": 1, \"value\": \"x\"}",
        "{\"expectedVersion\": 1, \"newValue\": \"x\", \"ttl\": -5}",
        "{\"expectedVersion\": 1, \"newValue\": \"%%\", \"encoding\": \"base64\"}",
        "{\"expectedVersion\": 1, \"newValue\": \"x\"",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = cas(&w, bad[i]);
        if (rc != KV_EINVAL)
            fail_msg("body %zu (%s) gave %d", i, bad[i], rc);
    }
}

static int batch(kvi_http_batch_body *b, const char *body, size_t max_ops, char *err)
{
    err[0] = 0;
    int rc = kvi_http_parse_batch(b, body, strlen(body), max_ops, err, 256);
    if (rc != KV_OK) {
        assert_null(b->root);
        assert_null(b->items);
        assert_true(err[0] != 0);
    }
    return rc;
}

static void parse_batch_good(void **state)
{
    (void)state;
    kvi_http_batch_body b;
    char err[256];
    assert_int_equal(batch(&b,
                           "{\"operations\": ["
                           "{\"op\": \"PUT\", \"key\": \"k1\", \"value\": \"v1\", \"ttl\": 60},"
                           "{\"op\": \"get\", \"key\": \"k2\"},"
                           "{\"op\": \"Delete\", \"key\": \"k3\", \"value\": 1},"
                           "{\"op\": \"PUT\", \"key\": \"AA==\", \"value\": \"/w==\", \"encoding\": \"base64\"}"
                           "]}",
                           100, err),
                     KV_OK);
    assert_int_equal(b.count, 4);
    assert_int_equal(b.items[0].kind, KV_BATCH_PUT);
    assert_int_equal(b.items[0].key_len, 2);
    assert_memory_equal(b.items[0].key, "k1", 2);
    assert_memory_equal(b.items[0].value, "v1", 2);
    assert_int_equal(b.items[0].ttl_s, 60);
    assert_int_equal(b.items[1].kind, KV_BATCH_GET);
    assert_null(b.items[1].value);
    assert_int_equal(b.items[2].kind, KV_BATCH_DELETE); /* value ignored on DELETE */
    assert_int_equal(b.items[3].base64, 1);
    assert_int_equal(b.items[3].key_len, 1);
    assert_int_equal(b.items[3].key[0], 0);
    assert_int_equal(b.items[3].value_len, 1);
    assert_int_equal(b.items[3].value[0], 0xff);
    kvi_http_batch_body_free(&b);
    kvi_http_batch_body_free(NULL);
}

static void parse_batch_bad(void **state)
{
    (void)state;
    kvi_http_batch_body b;
    char err[256];
    struct {
        const char *body;
        const char *says; /* a part of the message */
    } bad[] = {
        {"{}", "\"operations\" is missing"},
        {"{\"operations\": {}}", "must be an array"},
        {"{\"operations\": []}", "empty"},
        {"{\"operations\": [1]}", "operation 0"},
        {"{\"operations\": [{\"key\": \"k\"}]}", "\"op\" is missing"},
        {"{\"operations\": [{\"op\": 3, \"key\": \"k\"}]}", "\"op\" must be a string"},
        {"{\"operations\": [{\"op\": \"GET\", \"key\": \"k\"}, {\"op\": \"MERGE\", \"key\": \"k\"}]}",
         "operation 1: unknown op \"MERGE\""},
        {"{\"operations\": [{\"op\": \"GET\"}]}", "\"key\" is missing"},
        {"{\"operations\": [{\"op\": \"GET\", \"key\": 7}]}", "\"key\" must be a string"},
        {"{\"operations\": [{\"op\": \"GET\", \"key\": \"\"}]}", "\"key\" is empty"},
        {"{\"operations\": [{\"op\": \"PUT\", \"key\": \"k\"}]}", "\"value\" is missing"},
        {"{\"operations\": [{\"op\": \"PUT\", \"key\": \"k\", \"value\": false}]}", "\"value\" must be a string"},
        {"{\"operations\": [{\"op\": \"PUT\", \"key\": \"k\", \"value\": \"v\", \"ttl\": \"1\"}]}", "\"ttl\""},
        {"{\"operations\": [{\"op\": \"PUT\", \"key\": \"k\", \"value\": \"v\", \"ttl\": -1}]}", "\"ttl\""},
        {"{\"operations\": [{\"op\": \"GET\", \"key\": \"*\", \"encoding\": \"base64\"}]}", "base64"},
        {"{\"operations\": [{\"op\": \"GET\", \"key\": \"k\", \"encoding\": \"rot13\"}]}", "encoding"},
        {"{\"operations\": [{\"op\": \"GET\", \"key\": \"k\"}", "malformed JSON"},
        {"[]", "JSON object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = batch(&b, bad[i].body, 100, err);
        if (rc != KV_EINVAL || !strstr(err, bad[i].says))
            fail_msg("body %zu (%s) gave %d: %s", i, bad[i].body, rc, err);
    }
    /* More operations than allowed is "too big", not "bad". */
    assert_int_equal(batch(&b, "{\"operations\": [{\"op\": \"GET\", \"key\": \"a\"}, {\"op\": \"GET\", \"key\": \"b\"}]}",
                           1, err),
                     KV_ETOOBIG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(percent_decoding),
        cmocka_unit_test(base64_round_trip),
        cmocka_unit_test(base64_invalid),
        cmocka_unit_test(utf8_check),
        cmocka_unit_test(utf8_validator),
        cmocka_unit_test(json_output),
        cmocka_unit_test(parse_put_good),
        cmocka_unit_test(parse_put_bad),
        cmocka_unit_test(parse_cas_body),
        cmocka_unit_test(parse_batch_good),
        cmocka_unit_test(parse_batch_bad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
