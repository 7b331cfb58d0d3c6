/*
 * kvctl - command-line client of a libkv cluster, through the public client
 * handle (kv_client_open) and so the binary protocol.
 *
 *   kvctl [--endpoints HOST:PORT[,HOST:PORT...]] [-w text|json] [--timeout MS]
 *         COMMAND [ARGS]
 *
 *   put KEY VALUE [--ttl S]          prints "version N"
 *   get KEY [--verbose]              prints the value's bytes and a newline
 *   del KEY                          prints "version N" (the tombstone's)
 *   cas KEY EXPECTED_VERSION VALUE [--ttl S]
 *                                    prints "version N"; on a mismatch, the
 *                                    current version, and exits 4
 *   batch FILE.json | -              the HTTP batch body; one line per result
 *   health                           kv_ping; prints "ok"
 *   scan [--limit N] [--keys-only] [--cursor C]
 *                                    every live key (and value) in ring-token
 *                                    order, one per line: KEY<TAB>VALUE
 *   members                          the members the node knows, their keys
 *                                    and bytes on disk, and failures
 *   ring                             the members' shares of the ring
 *   backup DIR                       every node snapshots its store into
 *                                    DIR/<node-id> on its own machine; one
 *                                    line per node: id, path, size
 *   repair [--node ID] [--wait]      every node (or ID) runs an anti-entropy
 *                                    round with the members it shares ranges
 *                                    with; --wait follows each to its end
 *   repair-status [--ranges]         per node: last full repair, exchanges,
 *                                    keys repaired, bytes, replication lag,
 *                                    tombstones awaiting purge
 *   decommission [--node ID]         the node (or ID) leaves the cluster: its
 *                                    ranges stream to their new homes first
 *   removenode ID                    ID, down for good, is removed: the others
 *                                    re-replicate its ranges
 *   topology-abort                   undoes the topology change in progress
 *   cleanup [--node ID]              every member (or ID) drops the data of the
 *                                    ranges it is no home of (after a change)
 *   streams                          the streams running: target, change,
 *                                    sources, ranges, bytes, rate, ETA
 *   stats [--interval S]             per node over S seconds: requests per
 *                                    second, GET and PUT p50/p99/p999
 *   top [--watch]                    the cluster's hottest keys lately
 *   predict-consistency [--r R] [--w W] [--t MS] [--node ID]
 *                                    staleness predicted (PBS) from the node's
 *                                    round trips to its peers
 *
 * A VALUE of "-" is read from stdin, "@FILE" from FILE (curl's convention),
 * binary-safe, up to the library's 64 MiB ceiling. Flags may come before or
 * after the command; "--" ends the flags, and every argument after it is
 * literal: a key or value may start with '-', and "-" or "@x" is the value
 * itself. The endpoints come from --endpoints, else from $KVCTL_ENDPOINTS,
 * else 127.0.0.1:7400.
 *
 * -w json prints exactly one JSON object on stdout, errors included
 * ({"error":{"code":"NOT_FOUND","message":"..."}}), in the shapes of the HTTP
 * API (docs/CLI.md): when a key or value is not valid UTF-8 or contains NUL,
 * the object's key and values are all base64, with "encoding":"base64".
 *
 * Exit status: 0 success, 1 other error, 2 usage error, 3 not found,
 * 4 conflict, 5 unavailable, timed out or unknown outcome, 6 not permitted
 * (a missing or wrong token).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <kv/kv.h>

#include "../common/credentials.h"
/* The simulation itself is the library's (compiled in here too: it is
 * pure arithmetic, and libkv exports only kv_* symbols). */
#include "util/pbs.h"

#define PROG "kvctl"
#define DEFAULT_ENDPOINT "127.0.0.1:7400"
#define MAX_ENDPOINTS 64
#define MAX_ARGS 8
/* A batch file larger than this is refused before it is read whole. */
#define MAX_BATCH_FILE (256u << 20)

enum exit_code {
    EXIT_OK = 0,
    EXIT_ERROR = 1,
    EXIT_USAGE = 2,
    EXIT_NOTFOUND = 3,
    EXIT_CONFLICT = 4,
    EXIT_UNAVAILABLE = 5,
    EXIT_NOT_PERMITTED = 6
};

struct cli {
    const char *endpoints; /* comma-separated */
    bool json;
    uint32_t timeout_ms;   /* 0 = the library's defaults */
    bool has_ttl;
    uint64_t ttl_s;
    uint64_t expected;     /* cas */
    kv_consistency level;  /* --consistency; DEFAULT = the library's (QUORUM) */
    kv_conflict_policy policy; /* --policy */
    bool verbose;          /* get --verbose */
    bool home_only;        /* --home-only */
    bool has_limit;        /* scan --limit */
    uint64_t limit;        /* ... the most keys to print */
    bool keys_only;        /* scan --keys-only */
    const char *cursor;    /* scan --cursor */
    const char *node;      /* repair --node */
    bool wait;             /* repair --wait */
    bool ranges;           /* repair-status --ranges */
    uint64_t interval_ms;  /* stats --interval, in ms; 0: the default */
    bool watch;            /* top --watch */
    unsigned pbs_r, pbs_w; /* predict-consistency --r, --w; 0: not given */
    double t_ms;           /* predict-consistency --t; < 0: the default list */
    const char *token_file; /* --token-file */
    bool tls;               /* --tls */
    const char *tls_ca;     /* --tls-ca, --tls-cert, --tls-key: PEM files */
    const char *tls_cert;
    const char *tls_key;
    const char *context_b64; /* --context, as given */
    unsigned char *context;  /* ... decoded (put, del) */
    size_t context_len;
    const char *cmd;
    const char *args[MAX_ARGS];
    bool literal[MAX_ARGS];  /* the argument came after "--" */
    int nargs;
    const unsigned char *value; /* put, cas: the value's bytes */
    size_t value_len;
    unsigned char *value_buf;   /* ... when read from stdin or a file */
};

static bool g_json; /* -w json, known as soon as it is parsed */
/* The endpoints and where they came from, for "no node reachable". */
static const char *g_endpoints;
static const char *g_endpoints_from;
/* The client options of the command's handle, for members to ask each
 * member for its own figures. */
static const kv_client_options *g_client_opts;

/* ------------------------------------------------------------------ usage */

static const char usage_line[] =
    "usage: " PROG " [--endpoints HOST:PORT[,...]] [-w text|json] [--timeout MS] COMMAND [ARGS]\n";

static void usage(FILE *f)
{
    fputs(usage_line, f);
    fputs("\n"
          "Commands:\n"
          "  put KEY VALUE [--ttl S] [--context C]\n"
          "                              store VALUE; prints \"version N\". VALUE \"-\"\n"
          "                              reads stdin, \"@FILE\" reads FILE (after \"--\"\n"
          "                              both are literal)\n"
          "  get KEY [--verbose]         prints the value's bytes, then a newline;\n"
          "                              --verbose adds which replicas answered with\n"
          "                              which versions\n"
          "  del KEY [--context C]       delete; prints \"version N\" (the tombstone's)\n"
          "  cas KEY EXPECTED VALUE [--ttl S]\n"
          "                              store VALUE only if the current version is\n"
          "                              EXPECTED (0 = only if absent); prints \"version N\",\n"
          "                              or the current version and exit 4 on a mismatch;\n"
          "                              VALUE \"-\" or \"@FILE\" as for put\n"
          "  batch FILE|-                run a batch in the HTTP body format, e.g.\n"
          "                              {\"operations\":[{\"op\":\"PUT\",\"key\":\"k\",\"value\":\"v\"}]};\n"
          "                              \"-\" reads stdin; one line per result\n"
          "  health                      round trip to a node; prints \"ok\"\n"
          "  scan [--limit N] [--keys-only] [--cursor C]\n"
          "                              every live key in ring-token order, one per\n"
          "                              line: KEY<TAB>VALUE (KEY alone with\n"
          "                              --keys-only); --limit prints at most N keys and\n"
          "                              then the cursor to go on from (--cursor)\n"
          "  members                     the members the node knows, their status,\n"
          "                              estimated keys and bytes on disk, and what it\n"
          "                              knows of failures\n"
          "  ring                        the members and their shares of the ring\n"
          "  backup DIR                  every node takes a consistent snapshot of its\n"
          "                              store (a RocksDB checkpoint: hard links) into\n"
          "                              DIR/<node-id> on its own machine; DIR is\n"
          "                              absolute; one line per node: id, path, size.\n"
          "                              Restore with kvd --restore-from DIR\n"
          "  repair [--node ID] [--wait] every node (or only ID) runs an anti-entropy\n"
          "                              round now: it compares its data with every\n"
          "                              member it shares token ranges with and repairs\n"
          "                              what differs; --wait waits for each round and\n"
          "                              prints what it repaired (exit 1 if one failed)\n"
          "  repair-status [--ranges]    per node: when it was last fully repaired,\n"
          "                              its exchanges, keys repaired, bytes, the\n"
          "                              replication lag its last exchange saw, and\n"
          "                              the tombstones it keeps until it may purge them;\n"
          "                              --ranges adds, per member, when the ranges the\n"
          "                              two share were last repaired\n"
          "  decommission [--node ID]    the node reached (or ID) leaves the cluster: its\n"
          "                              ranges stream to their new homes, then it is\n"
          "                              left and may be stopped\n"
          "  removenode ID               ID, down for good, leaves the cluster: the\n"
          "                              others re-replicate its ranges\n"
          "  topology-abort              undoes the topology change in progress\n"
          "  cleanup [--node ID]         every member (or ID) drops the data of the token\n"
          "                              ranges it is no home of, after a change ends\n"
          "  streams                     the streams running now: target, change, sources,\n"
          "                              ranges done, bytes, rate, ETA\n"
          "  stats [--interval S]        per node, over S seconds (default 2): requests\n"
          "                              per second, and the p50, p99 and p999 latency\n"
          "                              of its GETs and PUTs, as the node measured them\n"
          "  top [--watch]               the hottest keys of the cluster lately (the last\n"
          "                              10-20 s), reads and writes, summed over the nodes\n"
          "                              that coordinated them; --watch: again every 2 s\n"
          "  predict-consistency [--r R] [--w W] [--t MS] [--node ID]\n"
          "                              how likely a read at R (default 1) returns a write\n"
          "                              acknowledged at W (default 1) MS ms earlier (default:\n"
          "                              0 to 1000 ms), and how many versions behind it is,\n"
          "                              from the round trips the node (or ID) measured to\n"
          "                              its peers (PBS, docs/OPERATIONS.md)\n"
          "\n"
          "Flags:\n"
          "  --endpoints LIST   comma-separated HOST:PORT of the binary protocol\n"
          "                     (default $KVCTL_ENDPOINTS, else " DEFAULT_ENDPOINT ")\n"
          "  -w, --write-out F  text (default) or json\n"
          "  --timeout MS       connect and request timeout in milliseconds\n"
          "  --ttl S            time to live of a put or cas, in seconds (0 = none)\n"
          "  --consistency L    one, quorum (default), all or serial (linearizable, per key;\n"
          "                     the default for cas in a cluster)\n"
          "  --policy P         lww (default: the latest write) or siblings (get\n"
          "                     shows every concurrent value; -w json prints them)\n"
          "  --home-only        writes: count only the key's home replicas (no stand-ins\n"
          "                     for a home that is down)\n"
          "  -v, --verbose      get: print each replica's answer\n"
          "  --context C        put, del: the base64 \"context\" of an earlier\n"
          "                     get -w json; the write supersedes what that read saw\n"
          "  --token-file FILE  the client token to show the nodes (kvd\n"
          "                     --client-token-file); default $KVCTL_TOKEN\n"
          "  --tls              TLS to the nodes, checked against the system's CAs\n"
          "  --tls-ca FILE      TLS, checked against this CA (kvd --tls-ca)\n"
          "  --tls-cert FILE, --tls-key FILE\n"
          "                     a client certificate, for nodes that ask\n"
          "  --                 end of flags; every argument after it is literal (keys\n"
          "                     or values starting with '-', a value \"-\" or \"@x\")\n"
          "  -h, --help         this help\n"
          "  --version          print \"" PROG " VERSION\" (the library's) and exit\n"
          "\n"
          "Exit status: 0 ok, 1 error, 2 usage, 3 not found, 4 conflict,\n"
          "5 unavailable, timed out or unknown outcome, 6 not permitted (a token\n"
          "is missing or wrong).\n",
          f);
}

static void usage_error(const char *fmt, const char *arg)
{
    char msg[512];
    snprintf(msg, sizeof msg, fmt, arg);
    fprintf(stderr, PROG ": %s\n", msg);
    fputs(usage_line, stderr);
    fputs("Try '" PROG " --help'.\n", stderr);
    if (g_json) {
        /* One JSON object on stdout, whatever happened. */
        fputs("{\"error\":{\"code\":\"USAGE\",\"message\":\"", stdout);
        for (const char *p = msg; *p; p++) {
            if (*p == '"' || *p == '\\')
                putchar('\\');
            if ((unsigned char)*p >= 0x20)
                putchar(*p);
        }
        fputs("\"}}\n", stdout);
    }
    exit(EXIT_USAGE);
}

/* ------------------------------------------------------------ byte strings */

/* Whether s[0..n) is valid UTF-8 without NUL, so it can be a JSON string. */
static bool is_json_text(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c == 0)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t extra;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) {
            extra = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            extra = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            extra = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (n - i <= extra)
            return false;
        for (size_t k = 1; k <= extra; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        /* overlong forms, surrogates, beyond U+10FFFF */
        if ((extra == 2 && cp < 0x800) || (extra == 3 && cp < 0x10000) ||
            (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
            return false;
        i += extra + 1;
    }
    return true;
}

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void put_base64(FILE *f, const unsigned char *s, size_t n)
{
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        fputc(b64_alphabet[v >> 18], f);
        fputc(b64_alphabet[(v >> 12) & 63], f);
        fputc(b64_alphabet[(v >> 6) & 63], f);
        fputc(b64_alphabet[v & 63], f);
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)s[i] << 16;
        fputc(b64_alphabet[v >> 18], f);
        fputc(b64_alphabet[(v >> 12) & 63], f);
        fputs("==", f);
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8;
        fputc(b64_alphabet[v >> 18], f);
        fputc(b64_alphabet[(v >> 12) & 63], f);
        fputc(b64_alphabet[(v >> 6) & 63], f);
        fputc('=', f);
    }
}

static int b64_value(int c)
{
    const char *p = c ? strchr(b64_alphabet, c) : NULL;
    return p ? (int)(p - b64_alphabet) : -1;
}

/* Decode standard base64 (padding optional). Returns a malloc'd buffer, or
 * NULL when s is not base64 (*bad set) or memory is short (*bad clear). */
static unsigned char *base64_decode(const char *s, size_t *out_len, bool *bad)
{
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == '=')
        n--;
    *bad = true;
    if (n % 4 == 1)
        return NULL;
    unsigned char *out = malloc(n / 4 * 3 + 3);
    if (out == NULL) {
        *bad = false;
        return NULL;
    }
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_value((unsigned char)s[i]);
        if (v < 0) {
            free(out);
            return NULL;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    *bad = false;
    *out_len = o;
    return out;
}

/* Print a JSON string literal of valid UTF-8 text. */
static void put_json_text(FILE *f, const unsigned char *s, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        switch (c) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (c < 0x20 || c == 0x7f)
                fprintf(f, "\\u%04x", c);
            else
                fputc(c, f);
        }
    }
    fputc('"', f);
}

static void put_json_cstr(FILE *f, const char *s)
{
    /* Messages are ours or the library's; strip anything not JSON text. */
    size_t n = strlen(s);
    if (is_json_text((const unsigned char *)s, n))
        put_json_text(f, (const unsigned char *)s, n);
    else
        fputs("\"(message not UTF-8)\"", f);
}

/* Print `"name":"..."` for bytes, as text or as base64. */
static void put_json_bytes(FILE *f, const char *name, const void *data, size_t n, bool b64)
{
    fprintf(f, "\"%s\":", name);
    if (b64) {
        fputc('"', f);
        put_base64(f, data, n);
        fputc('"', f);
    } else {
        put_json_text(f, data, n);
    }
}

/* Whether an object holding this key and value must be base64: as in the
 * HTTP API, one "encoding" covers the key and every value of the object. */
static bool needs_base64(const char *key, const kv_value *v)
{
    if (key != NULL && !is_json_text((const unsigned char *)key, strlen(key)))
        return true;
    size_t ns = v != NULL ? kv_value_sibling_count(v) : 0;
    for (size_t i = 0; i < (ns > 1 ? ns : 1) && v != NULL; i++) {
        size_t len = 0;
        const void *d = ns > 1 ? kv_value_sibling(v, i, &len) : kv_value_data(v, &len);
        if (!is_json_text(d, len))
            return true;
    }
    return false;
}

/* ------------------------------------------------------------------ errors */

static const char *code_name(int rc)
{
    switch (rc) {
    case KV_OK: return "OK";
    case KV_ENOTFOUND: return "NOT_FOUND";
    case KV_ECONFLICT: return "CONFLICT";
    case KV_ETOOBIG: return "TOO_BIG";
    case KV_EINVAL: return "BAD_REQUEST";
    case KV_ETIMEDOUT: return "TIMEOUT";
    case KV_EUNAVAILABLE: return "UNAVAILABLE";
    case KV_EUNKNOWN_OUTCOME: return "UNKNOWN_OUTCOME";
    case KV_ECORRUPT: return "CORRUPT";
    case KV_EIO: return "IO_ERROR";
    case KV_ECLOSED: return "CLOSED";
    case KV_ENOTSUP: return "NOT_SUPPORTED";
    case KV_EBUSY: return "BUSY";
    case KV_EPERM: return "NOT_PERMITTED";
    }
    return "INTERNAL"; /* KV_ENOMEM and codes this kvctl does not know */
}

static int exit_for(int rc)
{
    switch (rc) {
    case KV_OK: return EXIT_OK;
    case KV_ENOTFOUND: return EXIT_NOTFOUND;
    case KV_ECONFLICT: return EXIT_CONFLICT;
    case KV_EPERM: return EXIT_NOT_PERMITTED;
    case KV_EUNAVAILABLE:
    case KV_ETIMEDOUT:
    case KV_EUNKNOWN_OUTCOME: return EXIT_UNAVAILABLE;
    }
    return EXIT_ERROR;
}

/* The message of a failed call: kv_strerror, then the thread's detail (read
 * right after the call, before any other libkv call replaces it). */
static void error_message(char *buf, size_t size, int rc)
{
    const char *detail = kv_error_last();
    if (detail[0] != '\0' && strcmp(detail, kv_strerror(rc)) != 0)
        snprintf(buf, size, "%s: %s", kv_strerror(rc), detail);
    else
        snprintf(buf, size, "%s", kv_strerror(rc));
}

/* Report a failed call and return its exit status. `extra` adds fields to the
 * JSON object (e.g. the current version of a conflict); may be NULL. */
static int fail(const char *what, int rc, const char *extra)
{
    char msg[2048];
    error_message(msg, sizeof msg, rc);
    if ((rc == KV_EUNAVAILABLE || rc == KV_ETIMEDOUT) && g_endpoints != NULL &&
        strstr(kv_error_last(), "no node reachable") != NULL) {
        /* No endpoint answered: say which were tried and how to change them. */
        size_t n = strlen(msg);
        snprintf(msg + n, sizeof msg - n,
                 " (endpoints tried: %s, %s; set them with --endpoints or $KVCTL_ENDPOINTS)",
                 g_endpoints, g_endpoints_from);
    }
    if (g_json) {
        fprintf(stdout, "{\"error\":{\"code\":\"%s\",\"message\":", code_name(rc));
        put_json_cstr(stdout, msg);
        fprintf(stdout, "}%s%s}\n", extra ? "," : "", extra ? extra : "");
    }
    fprintf(stderr, PROG ": %s: %s\n", what, msg);
    return exit_for(rc);
}

/* ---------------------------------------------------------------- commands */

static void print_version(uint64_t version)
{
    if (g_json)
        printf("{\"version\":%" PRIu64 "}\n", version);
    else
        printf("version %" PRIu64 "\n", version);
}

static kv_write_options write_opts(const struct cli *c)
{
    kv_write_options wo = KV_WRITE_OPTIONS_INIT;
    if (c->has_ttl)
        wo.ttl_s = c->ttl_s;
    wo.consistency = c->level;
    wo.home_only = c->home_only;
    wo.context = c->context;
    wo.context_len = c->context_len;
    return wo;
}

static kv_read_options read_opts(const struct cli *c)
{
    kv_read_options ro = KV_READ_OPTIONS_INIT;
    ro.consistency = c->level;
    return ro;
}

/* What a replica's status in kv_get_traced's JSON means, for the text
 * output (-w json keeps the codes alone); docs/CLI.md lists them. */
static const char *status_gloss(const char *status)
{
    static const struct {
        const char *status, *gloss;
    } glosses[] = {
        {"NOT_FOUND", "has no value for this key"},
        {"NOT_ASKED", "not asked: enough other replicas answered"},
        {"NOT_WAITED_FOR", "asked, but enough others answered first"},
        {"UNAVAILABLE", "unreachable, or held down by the failure detector"},
        {"TIMEOUT", "no answer in time"},
        {"CORRUPT", "its stored copy failed its checks"},
        {"NOT_A_REPLICA", "its ring differs: it does not hold this key"},
        {"ERROR", "another failure: see that node's log"},
    };
    for (size_t i = 0; i < sizeof glosses / sizeof glosses[0]; i++)
        if (strcmp(glosses[i].status, status) == 0)
            return glosses[i].gloss;
    return NULL;
}

/* get --verbose: which replicas answered, from kv_get_traced's JSON. */
static void print_trace(const char *trace)
{
    if (trace == NULL)
        return;
    cJSON *root = cJSON_Parse(trace);
    const cJSON *replicas = cJSON_GetObjectItemCaseSensitive(root, "replicas");
    const cJSON *r;
    cJSON_ArrayForEach(r, replicas) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(r, "nodeId");
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(r, "status");
        const cJSON *ver = cJSON_GetObjectItemCaseSensitive(r, "version");
        const cJSON *sib = cJSON_GetObjectItemCaseSensitive(r, "siblings");
        const cJSON *rep = cJSON_GetObjectItemCaseSensitive(r, "repaired");
        if (!cJSON_IsString(id) || !cJSON_IsString(st))
            continue;
        if (strcmp(st->valuestring, "OK") == 0)
            printf("replica %s: version %.0f, %.0f sibling(s)%s\n", id->valuestring,
                   cJSON_IsNumber(ver) ? ver->valuedouble : 0,
                   cJSON_IsNumber(sib) ? sib->valuedouble : 0,
                   cJSON_IsTrue(rep) ? ", repaired" : "");
        else if (status_gloss(st->valuestring) != NULL)
            printf("replica %s: %s (%s)%s\n", id->valuestring, st->valuestring,
                   status_gloss(st->valuestring), cJSON_IsTrue(rep) ? ", repaired" : "");
        else
            printf("replica %s: %s%s\n", id->valuestring, st->valuestring,
                   cJSON_IsTrue(rep) ? ", repaired" : "");
    }
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(root, "required");
    if (cJSON_IsNumber(req) && cJSON_GetArraySize(replicas) > 0)
        printf("answers required: %.0f\n", req->valuedouble);
    cJSON_Delete(root);
}

static int cmd_put(kv *db, const struct cli *c)
{
    const char *key = c->args[0];
    kv_write_options wo = write_opts(c);
    uint64_t version = 0;
    int rc = kv_put(&version, db, key, strlen(key), c->value, c->value_len, &wo);
    if (rc != KV_OK)
        return fail("put", rc, NULL);
    print_version(version);
    return EXIT_OK;
}

static int cmd_del(kv *db, const struct cli *c)
{
    const char *key = c->args[0];
    uint64_t version = 0;
    kv_write_options wo = write_opts(c);
    int rc = kv_delete(&version, db, key, strlen(key), &wo);
    if (rc != KV_OK)
        return fail("del", rc, NULL);
    print_version(version);
    return EXIT_OK;
}

/* A read value as a JSON object's fields, after others (so each starts with
 * a comma): value, version, expiresAt (absent when it never expires) and, for
 * concurrent siblings, all of them. */
static void put_json_value_fields(FILE *f, const kv_value *v, bool b64)
{
    size_t len = 0;
    const void *data = kv_value_data(v, &len);
    fputc(',', f);
    put_json_bytes(f, "value", data, len, b64);
    fprintf(f, ",\"version\":%" PRIu64, kv_value_version(v));
    uint64_t exp = kv_value_expiry_ms(v);
    if (exp != 0)
        fprintf(f, ",\"expiresAt\":%" PRIu64, exp);
    size_t ns = kv_value_sibling_count(v);
    if (ns > 1) {
        fputs(",\"siblings\":[", f);
        for (size_t i = 0; i < ns; i++) {
            size_t sl = 0;
            const void *sd = kv_value_sibling(v, i, &sl);
            fprintf(f, "%s{", i ? "," : "");
            put_json_bytes(f, "value", sd, sl, b64);
            fputc('}', f);
        }
        fputc(']', f);
    }
    if (b64)
        fputs(",\"encoding\":\"base64\"", f);
}

static int cmd_get(kv *db, const struct cli *c)
{
    const char *key = c->args[0];
    kv_value *v = NULL;
    kv_read_options ro = read_opts(c);
    char *trace = NULL;
    int rc = c->verbose ? kv_get_traced(&v, &trace, db, key, strlen(key), &ro)
                        : kv_get(&v, db, key, strlen(key), &ro);
    if (rc != KV_OK) {
        if (c->verbose && !g_json)
            print_trace(trace);
        /* In JSON, the trace's fields go beside the error. */
        size_t tl = trace ? strlen(trace) : 0;
        if (tl >= 2) {
            trace[tl - 1] = '\0';
            memmove(trace, trace + 1, tl - 1);
        }
        int code = fail("get", rc, tl >= 2 ? trace : NULL);
        kv_string_free(trace);
        return code;
    }
    if (g_json) {
        bool b64 = needs_base64(key, v);
        fputc('{', stdout);
        put_json_bytes(stdout, "key", key, strlen(key), b64);
        put_json_value_fields(stdout, v, b64);
        size_t ctx_len = 0;
        const void *ctx = kv_value_context(v, &ctx_len);
        if (ctx_len > 0) {
            /* Always base64, as the HTTP API's: for put/del --context. */
            fputs(",\"context\":\"", stdout);
            put_base64(stdout, ctx, ctx_len);
            fputc('"', stdout);
        }
        if (trace != NULL) {
            /* The trace's fields, inside this object. */
            size_t tl = strlen(trace);
            if (tl >= 2)
                printf(",%.*s", (int)(tl - 2), trace + 1);
        }
        fputs("}\n", stdout);
        kv_string_free(trace);
    } else {
        size_t len = 0;
        const void *data = kv_value_data(v, &len);
        if (kv_value_sibling_count(v) > 1)
            fprintf(stderr, PROG ": get: %zu concurrent siblings, printing the first "
                    "(-w json prints all)\n", kv_value_sibling_count(v));
        fwrite(data, 1, len, stdout);
        fputc('\n', stdout);
        print_trace(trace);
        kv_string_free(trace);
    }
    kv_value_free(v);
    return EXIT_OK;
}

static int cmd_cas(kv *db, const struct cli *c)
{
    const char *key = c->args[0];
    kv_write_options wo = write_opts(c);
    uint64_t version = 0;
    int rc = kv_cas(&version, db, key, strlen(key), c->expected, c->value, c->value_len, &wo);
    if (rc == KV_ECONFLICT) {
        char extra[64];
        snprintf(extra, sizeof extra, "\"version\":%" PRIu64, version);
        int code = fail("cas", rc, extra);
        if (!g_json)
            printf("version %" PRIu64 "\n", version);
        return code;
    }
    if (rc != KV_OK)
        return fail("cas", rc, NULL);
    print_version(version);
    return EXIT_OK;
}

static int cmd_health(kv *db, const struct cli *c)
{
    (void)c;
    int rc = kv_ping(db);
    if (rc != KV_OK)
        return fail("health", rc, NULL);
    if (g_json)
        puts("{\"status\":\"ok\"}");
    else
        puts("ok");
    return EXIT_OK;
}

/* ------------------------------------------------------------------- scan */

/* Keys per request: pages are fetched until --limit keys are printed or
 * the scan ends. */
#define SCAN_PAGE 1000u

/* One scanned key as a JSON object of the HTTP API's scan page. */
static void put_json_item(FILE *f, const void *key, size_t klen, uint64_t version,
                          const kv_value *v)
{
    bool b64 = !is_json_text(key, klen);
    size_t ns = v != NULL ? kv_value_sibling_count(v) : 0;
    for (size_t i = 0; i < ns && !b64; i++) {
        size_t len = 0;
        const void *d = kv_value_sibling(v, i, &len);
        b64 = !is_json_text(d, len);
    }
    fputc('{', f);
    put_json_bytes(f, "key", key, klen, b64);
    if (v != NULL)
        put_json_value_fields(f, v, b64);
    else
        fprintf(f, ",\"version\":%" PRIu64 "%s", version,
                b64 ? ",\"encoding\":\"base64\"" : "");
    fputc('}', f);
}

static int cmd_scan(kv *db, const struct cli *c)
{
    kv_scan_options so = KV_SCAN_OPTIONS_INIT;
    so.consistency = c->level;
    so.keys_only = c->keys_only;
    /* JSON goes to memory first, so that a failure half-way still prints
     * exactly one object (the error). */
    char *json = NULL;
    size_t json_len = 0;
    FILE *out = g_json ? open_memstream(&json, &json_len) : stdout;
    if (out == NULL)
        return fail("scan", KV_ENOMEM, NULL);
    if (g_json)
        fputs("{\"items\":[", out);
    char *cursor = c->cursor != NULL ? strdup(c->cursor) : NULL;
    uint64_t printed = 0;
    int rc = KV_OK;
    bool first = true;
    for (;;) {
        uint64_t left = c->has_limit ? c->limit - printed : UINT64_MAX;
        if (left == 0)
            break;
        kv_scan_page *page = NULL;
        rc = kv_scan(&page, db, cursor, left < SCAN_PAGE ? (size_t)left : SCAN_PAGE, &so);
        if (rc != KV_OK)
            break;
        size_t n = kv_scan_page_count(page);
        for (size_t i = 0; i < n; i++) {
            size_t klen = 0;
            const void *key = kv_scan_page_key(page, i, &klen);
            const kv_value *v = kv_scan_page_value(page, i);
            if (g_json) {
                if (!first)
                    fputc(',', out);
                put_json_item(out, key, klen, kv_scan_page_version(page, i), v);
            } else {
                fwrite(key, 1, klen, out);
                if (v != NULL) {
                    size_t len = 0;
                    const void *data = kv_value_data(v, &len);
                    fputc('\t', out);
                    fwrite(data, 1, len, out);
                }
                fputc('\n', out);
            }
            first = false;
        }
        printed += n;
        const char *next = kv_scan_page_cursor(page);
        free(cursor);
        cursor = next != NULL ? strdup(next) : NULL;
        kv_scan_page_free(page);
        if (cursor == NULL)
            break;
    }
    int status = EXIT_OK;
    if (g_json) {
        fclose(out);
        if (rc == KV_OK) {
            fwrite(json, 1, json_len, stdout);
            fputs("],\"cursor\":", stdout);
            if (cursor != NULL)
                printf("\"%s\"}\n", cursor);
            else
                fputs("null}\n", stdout);
        }
        free(json);
    } else if (rc == KV_OK && cursor != NULL) {
        fprintf(stderr, PROG ": scan: %" PRIu64 " keys printed; more may follow: go on with "
                "--cursor %s\n", printed, cursor);
    }
    if (rc != KV_OK)
        status = fail("scan", rc, NULL);
    free(cursor);
    return status;
}

/* ------------------------------------------------------ members, ring */

/* Fetches the cluster's description from the node; NULL after a message. */
static cJSON *describe(kv *db, const char *what, int *code)
{
    char *json = NULL;
    int rc = kv_cluster_describe(&json, db);
    if (rc != KV_OK) {
        *code = fail(what, rc, NULL);
        return NULL;
    }
    cJSON *root = cJSON_Parse(json);
    kv_string_free(json);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        fprintf(stderr, PROG ": %s: the node sent a malformed description\n", what);
        *code = EXIT_ERROR;
        return NULL;
    }
    return root;
}

static const char *text_or(const cJSON *o, const char *name, const char *fallback)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : fallback;
}

static double number_or(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* A member's own description (the node answering describes only its own
 * store and anti-entropy), asked of it on a handle of its own; root's for
 * the node that answered. NULL when the member cannot be asked; the caller
 * deletes the result. */
/* -w json: prints {"name": items} on one line; in any case takes items. */
static void print_json_as(const char *name, cJSON *items)
{
    if (!name) {
        cJSON_Delete(items);
        return;
    }
    cJSON *wrap = cJSON_CreateObject();
    cJSON_AddItemToObject(wrap, name, items);
    char *text = cJSON_PrintUnformatted(wrap);
    if (text)
        puts(text);
    cJSON_free(text);
    cJSON_Delete(wrap);
}

static cJSON *member_description(const cJSON *root, const cJSON *m)
{
    const char *id = text_or(m, "nodeId", NULL);
    if (id != NULL && strcmp(id, text_or(root, "nodeId", "")) == 0)
        return cJSON_Duplicate(root, 1);
    const char *addr = text_or(m, "address", NULL);
    if (addr == NULL || g_client_opts == NULL)
        return NULL;
    kv *one = NULL;
    char *json = NULL;
    cJSON *desc = NULL;
    if (kv_client_open(&one, &addr, 1, g_client_opts) == KV_OK &&
        kv_cluster_describe(&json, one) == KV_OK)
        desc = cJSON_Parse(json);
    kv_string_free(json);
    kv_close(one);
    if (!cJSON_IsObject(desc)) {
        cJSON_Delete(desc);
        return NULL;
    }
    return desc;
}

/* The "storage" figures of a member, from its own description. */
static cJSON *member_storage(const cJSON *root, const cJSON *m)
{
    cJSON *desc = member_description(root, m);
    cJSON *st = cJSON_DetachItemFromObjectCaseSensitive(desc, "storage");
    cJSON_Delete(desc);
    if (cJSON_IsObject(st))
        return st;
    cJSON_Delete(st);
    return NULL;
}

/* Bytes for people: 1536 -> "1.5 KiB". */
static void human_bytes(char *buf, size_t size, double n)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    unsigned u = 0;
    while (n >= 1024 && u + 1 < sizeof units / sizeof units[0]) {
        n /= 1024;
        u++;
    }
    snprintf(buf, size, u ? "%.1f %s" : "%.0f %s", n, units[u]);
}

/* members: who the node believes is in the cluster, their store figures,
 * and what it knows of failures; ring: their shares. */
static int show_cluster(kv *db, bool shares)
{
    const char *what = shares ? "ring" : "members";
    int code = EXIT_OK;
    cJSON *root = describe(db, what, &code);
    if (!root)
        return code;
    cJSON *m;
    if (!shares) {
        /* Each member's own estimated keys and bytes on disk. */
        cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(root, "members")) {
            cJSON *st = member_storage(root, m);
            if (st != NULL && cJSON_IsObject(m))
                cJSON_AddItemToObject(m, "storage", st);
            else
                cJSON_Delete(st);
        }
    }
    if (g_json) {
        char *text = cJSON_PrintUnformatted(root);
        if (text)
            puts(text);
        cJSON_free(text);
        cJSON_Delete(root);
        return EXIT_OK;
    }
    const cJSON *complete = cJSON_GetObjectItemCaseSensitive(root, "complete");
    if (shares && !cJSON_IsTrue(complete))
        printf("(membership incomplete: the ring is built once every member's id is known)\n");
    if (shares)
        printf("%-24s %-24s %8s %8s\n", "NODE", "ADDRESS", "PRIMARY", "REPLICA");
    else
        printf("%-24s %-24s %-24s %-8s %12s %12s\n", "NODE", "ADDRESS", "HTTP", "STATUS",
               "KEYS(EST)", "DISK");
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(root, "members")) {
        const char *id = text_or(m, "nodeId", "(unknown)");
        const char *addr = text_or(m, "address", "-");
        if (shares) {
            const cJSON *p = cJSON_GetObjectItemCaseSensitive(m, "primaryShare");
            const cJSON *r = cJSON_GetObjectItemCaseSensitive(m, "replicaShare");
            printf("%-24s %-24s %7.2f%% %7.2f%%\n", id, addr,
                   cJSON_IsNumber(p) ? p->valuedouble * 100 : 0.0,
                   cJSON_IsNumber(r) ? r->valuedouble * 100 : 0.0);
        } else {
            /* A node alone has no gossip, and so no status. A member that
             * could not be asked has no figures. */
            const cJSON *st = cJSON_GetObjectItemCaseSensitive(m, "storage");
            char keys[32] = "-", disk[32] = "-";
            if (cJSON_IsObject(st)) {
                snprintf(keys, sizeof keys, "%.0f", number_or(st, "estimatedKeys"));
                human_bytes(disk, sizeof disk, number_or(st, "liveSstBytes"));
            }
            printf("%-24s %-24s %-24s %-8s %12s %12s\n", id, addr,
                   text_or(m, "httpAddress", "-"), text_or(m, "status", "-"), keys, disk);
        }
    }
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(root, "failures");
    if (!shares && cJSON_IsObject(f)) {
        /* What the node answering knows of failures (its /metrics too). */
        printf("\n%s sees %.0f up and %.0f down; failure-detector suspicions %.0f\n",
               text_or(root, "nodeId", "this node"), number_or(f, "membersUp"),
               number_or(f, "membersDown"), number_or(f, "suspicions"));
        printf("hints pending %.0f (oldest %.1f s), replayed %.0f, dropped %.0f; "
               "sloppy writes %.0f\n", number_or(f, "hintsPending"),
               number_or(f, "hintOldestAgeSeconds"), number_or(f, "hintsReplayed"),
               number_or(f, "hintsDropped"), number_or(f, "sloppyWrites"));
    }
    cJSON_Delete(root);
    return EXIT_OK;
}

static int cmd_members(kv *db, const struct cli *c)
{
    (void)c;
    return show_cluster(db, false);
}

static int cmd_ring(kv *db, const struct cli *c)
{
    (void)c;
    return show_cluster(db, true);
}

/* -------------------------------------------------------------- backup */

#define STR_(x) #x
#define STR(x) STR_(x)
#define BACKUP_MAX_TEXT STR(KV_BACKUP_MAX_PATH)

static int cmd_backup(kv *db, const struct cli *c)
{
    char *report = NULL;
    int rc = kv_backup(&report, db, c->args[0]);
    cJSON *root = report ? cJSON_Parse(report) : NULL;
    kv_string_free(report);
    const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(root, "nodes");
    if (g_json && rc == KV_OK) {
        char *text = cJSON_PrintUnformatted(root);
        if (text)
            puts(text);
        cJSON_free(text);
    } else if (!g_json) {
        const cJSON *n;
        cJSON_ArrayForEach(n, nodes) {
            const char *id = text_or(n, "nodeId", "-");
            if (strcmp(text_or(n, "status", ""), "OK") == 0)
                printf("%-24s %s %.0f bytes\n", id, text_or(n, "path", "-"),
                       number_or(n, "bytes"));
            else
                printf("%-24s FAILED %s: %s\n", id, text_or(n, "status", "?"),
                       text_or(n, "message", ""));
        }
    }
    int status = EXIT_OK;
    if (rc != KV_OK) {
        char *extra = NULL;
        if (nodes) {
            char *list = cJSON_PrintUnformatted(nodes);
            size_t n = list ? strlen(list) + 16 : 0;
            extra = list ? malloc(n) : NULL;
            if (extra)
                snprintf(extra, n, "\"nodes\":%s", list);
            cJSON_free(list);
        }
        status = fail("backup", rc, extra);
        free(extra);
    }
    cJSON_Delete(root);
    return status;
}

/* -------------------------------------------------------------- repair */

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The member of a description with this id, or NULL. */
static const cJSON *member_by_id(const cJSON *root, const char *id)
{
    const cJSON *m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(root, "members"))
        if (strcmp(text_or(m, "nodeId", ""), id) == 0)
            return m;
    return NULL;
}

/* Follows one node's round until it ends: 0 when it repaired every member
 * cleanly, 1 when it failed or the node cannot be asked any more. The
 * round's figures go into out (a JSON object) as "result". */
static int wait_round(kv *db, const char *id, double round, cJSON *out)
{
    int misses = 0;
    for (;;) {
        int code = EXIT_OK;
        cJSON *root = describe(db, "repair", &code);
        if (!root && code != EXIT_UNAVAILABLE) {
            /* Said on stderr already; asking again would say it again. */
            cJSON_AddStringToObject(out, "error", "the cluster's description could not be "
                                                  "read");
            return 1;
        }
        const cJSON *m = root ? member_by_id(root, id) : NULL;
        cJSON *desc = m ? member_description(root, m) : NULL;
        cJSON_Delete(root);
        const cJSON *ae = cJSON_GetObjectItemCaseSensitive(desc, "antiEntropy");
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(ae, "round");
        if (!cJSON_IsObject(r)) {
            cJSON_Delete(desc);
            /* A node restarting is asked again for a while (about 30 s). */
            if (++misses > 60) {
                cJSON_AddStringToObject(out, "error", "the node could not be asked for its "
                                                      "round's progress");
                return 1;
            }
            sleep_ms(500);
            continue;
        }
        misses = 0;
        double id_now = number_or(r, "id");
        if (id_now < round) {
            cJSON_AddStringToObject(out, "error", "the node restarted: its round was lost");
            cJSON_Delete(desc);
            return 1;
        }
        if (id_now > round || !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "running"))) {
            cJSON_AddItemToObject(out, "result", cJSON_Duplicate(r, 1));
            int clean = id_now == round && number_or(r, "peersFailed") == 0;
            cJSON_Delete(desc);
            return clean ? 0 : 1;
        }
        cJSON_Delete(desc);
        sleep_ms(500);
    }
}

static int cmd_repair(kv *db, const struct cli *c)
{
    char *report = NULL;
    int rc = kv_repair(&report, db, c->node);
    cJSON *root = report ? cJSON_Parse(report) : NULL;
    kv_string_free(report);
    cJSON *nodes = cJSON_GetObjectItemCaseSensitive(root, "nodes");
    int failed = 0;
    cJSON *n;
    cJSON_ArrayForEach(n, nodes) {
        const char *id = text_or(n, "nodeId", "-");
        bool started = strcmp(text_or(n, "status", ""), "OK") == 0;
        if (!started) {
            if (!g_json)
                printf("%-24s FAILED %s: %s\n", id, text_or(n, "status", "?"),
                       text_or(n, "message", ""));
            continue;
        }
        if (!c->wait) {
            if (!g_json)
                printf("%-24s repair round %.0f started\n", id, number_or(n, "round"));
            continue;
        }
        if (wait_round(db, id, number_or(n, "round"), n) != 0)
            failed++;
        if (g_json)
            continue;
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(n, "result");
        const cJSON *err = cJSON_GetObjectItemCaseSensitive(r ? r : n, "error");
        double secs = r ? (number_or(r, "finishedMs") - number_or(r, "startedMs")) / 1000.0 : 0;
        char bytes[32];
        human_bytes(bytes, sizeof bytes, r ? number_or(r, "bytes") : 0);
        if (r && number_or(r, "peersFailed") == 0)
            printf("%-24s repaired with %.0f member(s): %.0f keys, %s, %.1f s\n", id,
                   number_or(r, "peers"), number_or(r, "keysRepaired"), bytes, secs);
        else
            printf("%-24s FAILED with %.0f of %.0f member(s): %s\n", id,
                   r ? number_or(r, "peersFailed") : 0, r ? number_or(r, "peers") : 0,
                   cJSON_IsString(err) ? err->valuestring : "unknown");
    }
    if (g_json && rc == KV_OK) {
        char *text = cJSON_PrintUnformatted(root);
        if (text)
            puts(text);
        cJSON_free(text);
    }
    cJSON_Delete(root);
    if (rc != KV_OK)
        return fail("repair", rc, NULL);
    if (failed && !g_json)
        fprintf(stderr, PROG ": repair: %d node(s) did not repair cleanly\n", failed);
    return failed ? EXIT_ERROR : EXIT_OK;
}

/* ------------------------------------------------------------ topology */

/* A topology change (kv_topology_change): prints the record that holds it. */
static int topology_change(kv *db, const char *what, const char *change, const char *node)
{
    char *json = NULL;
    int rc = kv_topology_change(&json, db, change, node);
    if (rc != KV_OK) {
        kv_string_free(json);
        return fail(what, rc, NULL);
    }
    cJSON *root = cJSON_Parse(json);
    if (g_json) {
        puts(json);
    } else {
        const cJSON *op = cJSON_GetObjectItemCaseSensitive(root, "operation");
        if (cJSON_IsObject(op))
            printf("the %s of %s is recorded at epoch %.0f; it runs on (kvctl members shows "
                   "each member's state)\n", text_or(op, "kind", "?"),
                   text_or(op, "member", "?"), number_or(root, "epoch"));
        else
            printf("no topology change in progress; epoch %.0f\n", number_or(root, "epoch"));
    }
    cJSON_Delete(root);
    kv_string_free(json);
    return EXIT_OK;
}

static int cmd_decommission(kv *db, const struct cli *c)
{
    return topology_change(db, "decommission", "leave", c->node);
}

static int cmd_removenode(kv *db, const struct cli *c)
{
    return topology_change(db, "removenode", "remove", c->args[0]);
}

static int cmd_topology_abort(kv *db, const struct cli *c)
{
    (void)c;
    return topology_change(db, "topology-abort", "abort", NULL);
}

/* cleanup [--node ID]: each member of the ring (or ID) drops the data of
 * the ranges it is no home of, one after another, through a connection to
 * that member alone. */
static int cmd_cleanup(kv *db, const struct cli *c)
{
    int code = EXIT_OK;
    cJSON *root = describe(db, "cleanup", &code);
    if (!root)
        return code;
    cJSON *out = cJSON_CreateArray();
    int asked = 0, failed = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(root, "members")) {
        const char *id = text_or(m, "nodeId", NULL);
        const char *addr = text_or(m, "address", NULL);
        const char *state = text_or(m, "state", "normal");
        if (!id || !addr || (c->node && strcmp(c->node, id) != 0) ||
            (!c->node && strcmp(state, "normal") != 0 && strcmp(state, "leaving") != 0))
            continue;
        asked++;
        /* A cleanup of a large store takes a while (range deletes, a
         * compaction, the digest recomputed): without --timeout, wait up
         * to 30 minutes for each member's answer. */
        kv_client_options co = *g_client_opts;
        if (c->timeout_ms == 0)
            co.request_timeout_ms = 30u * 60u * 1000u;
        kv *one = NULL;
        char *json = NULL;
        int rc = kv_client_open(&one, &addr, 1, &co);
        if (rc == KV_OK)
            rc = kv_topology_change(&json, one, "cleanup", id);
        cJSON *entry = rc == KV_OK ? cJSON_Parse(json) : cJSON_CreateObject();
        if (rc != KV_OK) {
            cJSON_AddStringToObject(entry, "nodeId", id);
            cJSON_AddStringToObject(entry, "error", kv_error_last());
            failed++;
            if (!g_json)
                printf("%-20s FAILED %s: %s\n", id, kv_strerror(rc), kv_error_last());
        } else if (!g_json) {
            printf("%-20s dropped %.0f range(s) it is no home of: %.0f keys before, %.0f "
                   "after\n", id, number_or(entry, "ranges"), number_or(entry, "keysBefore"),
                   number_or(entry, "keysAfter"));
        }
        cJSON_AddItemToArray(out, entry);
        kv_string_free(json);
        kv_close(one);
    }
    print_json_as(g_json ? "nodes" : NULL, out);
    cJSON_Delete(root);
    if (asked == 0) {
        fprintf(stderr, PROG ": cleanup: %s\n", c->node ? "no such member" : "no member");
        return EXIT_ERROR;
    }
    return failed ? EXIT_ERROR : EXIT_OK;
}

/* streams: the stream each member runs now (a topology change's ranges
 * coming in): change, sources, ranges done, bytes, rate, ETA. */
static int cmd_streams(kv *db, const struct cli *c)
{
    (void)c;
    int code = EXIT_OK;
    cJSON *root = describe(db, "streams", &code);
    if (!root)
        return code;
    cJSON *out = cJSON_CreateArray();
    int running = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(root, "members")) {
        const char *id = text_or(m, "nodeId", NULL);
        if (!id)
            continue;
        cJSON *desc = member_description(root, m);
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(desc, "stream");
        if (cJSON_IsObject(st)) {
            cJSON *entry = cJSON_Duplicate(st, 1);
            cJSON_AddStringToObject(entry, "target", id);
            cJSON_AddItemToArray(out, entry);
            if (!g_json) {
                if (!running)
                    printf("%-16s %-20s %-24s %11s %10s %11s %8s\n", "TARGET", "CHANGE",
                           "SOURCES", "RANGES", "BYTES", "RATE", "ETA");
                char bytes[32], rate[32], ranges[32], eta[32];
                human_bytes(bytes, sizeof bytes, number_or(st, "bytes"));
                human_bytes(rate, sizeof rate, number_or(st, "bytesPerSecond"));
                strcat(rate, "/s");
                snprintf(ranges, sizeof ranges, "%.0f/%.0f", number_or(st, "rangesDone"),
                         number_or(st, "ranges"));
                double e = number_or(st, "etaSeconds");
                if (e < 0)
                    snprintf(eta, sizeof eta, "-");
                else
                    snprintf(eta, sizeof eta, "%.0f s", e);
                printf("%-16s %-20s %-24s %11s %10s %11s %8s\n", id, text_or(st, "change", "?"),
                       text_or(st, "sources", "?"), ranges, bytes, rate, eta);
            }
            running++;
        }
        cJSON_Delete(desc);
    }
    print_json_as(g_json ? "streams" : NULL, out);
    if (!g_json && !running)
        printf("no stream running\n");
    cJSON_Delete(root);
    return EXIT_OK;
}

/* How long ago a wall-clock ms was, for people ("never" for 0). */
static void human_age(char *buf, size_t size, double ms)
{
    if (ms <= 0) {
        snprintf(buf, size, "never");
        return;
    }
    double age = ((double)time(NULL) * 1000.0 - ms) / 1000.0;
    if (age < 0)
        age = 0;
    if (age < 120)
        snprintf(buf, size, "%.0f s ago", age);
    else if (age < 7200)
        snprintf(buf, size, "%.0f min ago", age / 60);
    else
        snprintf(buf, size, "%.1f h ago", age / 3600);
}

static int cmd_repair_status(kv *db, const struct cli *c)
{
    int code = EXIT_OK;
    cJSON *root = describe(db, "repair-status", &code);
    if (!root)
        return code;
    cJSON *out = cJSON_CreateArray();
    if (!g_json)
        printf("%-20s %-14s %9s %9s %10s %10s %10s %9s %10s  %s\n", "NODE", "FULL REPAIR",
               "EXCHANGES", "FAILED", "KEYS IN", "KEYS OUT", "BYTES", "LAG", "TO PURGE",
               "LAST ERROR");
    const cJSON *m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(root, "members")) {
        const char *id = text_or(m, "nodeId", "-");
        cJSON *desc = member_description(root, m);
        const cJSON *ae = cJSON_GetObjectItemCaseSensitive(desc, "antiEntropy");
        cJSON *entry = cJSON_CreateObject();
        cJSON_AddStringToObject(entry, "nodeId", id);
        if (cJSON_IsObject(ae))
            cJSON_AddItemToObject(entry, "antiEntropy", cJSON_Duplicate(ae, 1));
        else
            cJSON_AddNullToObject(entry, "antiEntropy");
        cJSON_AddItemToArray(out, entry);
        if (g_json) {
            cJSON_Delete(desc);
            continue;
        }
        if (!cJSON_IsObject(ae)) {
            printf("%-20s (could not be asked, or not in a cluster)\n", id);
            cJSON_Delete(desc);
            continue;
        }
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(ae, "bytes");
        char age[32], bytes[32];
        human_age(age, sizeof age, number_or(ae, "lastFullRepairMs"));
        human_bytes(bytes, sizeof bytes, number_or(b, "digest") + number_or(b, "keys") +
                                             number_or(b, "repair"));
        const cJSON *err = cJSON_GetObjectItemCaseSensitive(ae, "lastError");
        printf("%-20s %-14s %9.0f %9.0f %10.0f %10.0f %10s %8.1fs %10.0f  %s\n", id, age,
               number_or(ae, "exchanges"), number_or(ae, "exchangesFailed"),
               number_or(ae, "keysReceived"), number_or(ae, "keysSent"), bytes,
               number_or(ae, "lagMs") / 1000.0, number_or(ae, "tombstonesPendingPurge"),
               cJSON_IsString(err) ? err->valuestring : "-");
        /* --ranges: per member, the ranges the two share. */
        const cJSON *p;
        const cJSON *shared = c->ranges ? cJSON_GetObjectItemCaseSensitive(ae, "members")
                                        : NULL;
        cJSON_ArrayForEach(p, shared) {
            const cJSON *perr = cJSON_GetObjectItemCaseSensitive(p, "lastError");
            human_age(age, sizeof age, number_or(p, "lastCleanExchangeMs"));
            printf("  ranges shared with %-20s last repaired %-14s%s%s\n",
                   text_or(p, "nodeId", "-"), age, cJSON_IsString(perr) ? "  last try: " : "",
                   cJSON_IsString(perr) ? perr->valuestring : "");
        }
        cJSON_Delete(desc);
    }
    print_json_as(g_json ? "nodes" : NULL, out);
    cJSON_Delete(root);
    return EXIT_OK;
}

/* --------------------------------------------------------------- stats */

/* Each member's own description (member_description), in the order of
 * root's members: an array of *n entries, NULL for a member that could not
 * be asked; NULL when out of memory. Free with free_descriptions. */
static cJSON **member_descriptions(const cJSON *root, int *n)
{
    const cJSON *members = cJSON_GetObjectItemCaseSensitive(root, "members");
    *n = cJSON_GetArraySize(members);
    cJSON **descs = calloc((size_t)(*n > 0 ? *n : 1), sizeof *descs);
    for (int i = 0; descs && i < *n; i++)
        descs[i] = member_description(root, cJSON_GetArrayItem(members, i));
    return descs;
}

static void free_descriptions(cJSON **descs, int n)
{
    for (int i = 0; descs && i < n; i++)
        cJSON_Delete(descs[i]);
    free(descs);
}

/* One node's latency histograms between two of its descriptions (their
 * "latency" objects, util/metrics.h): per operation, the requests and the
 * bucket counts of the interval, summed over protocols and levels. */
enum { STATS_OPS = 6, STATS_MAX_BUCKETS = 128 };
static const char *const stats_ops[STATS_OPS] = {"get", "put", "delete", "cas", "batch", "other"};

typedef struct op_window {
    double count;
    double buckets[STATS_MAX_BUCKETS + 1];
} op_window;

typedef struct node_window {
    double seconds;
    size_t n_bounds;
    double bounds_us[STATS_MAX_BUCKETS];
    op_window ops[STATS_OPS];
} node_window;

static int op_index(const char *op)
{
    for (int i = 0; i < STATS_OPS; i++)
        if (strcmp(stats_ops[i], op) == 0)
            return i;
    return -1;
}

/* Adds (sign 1) or takes away (sign -1) one description's counts. */
static bool add_latency(node_window *w, const cJSON *lat, double sign)
{
    const cJSON *bounds = cJSON_GetObjectItemCaseSensitive(lat, "boundsUs");
    const cJSON *series = cJSON_GetObjectItemCaseSensitive(lat, "series");
    int n = cJSON_GetArraySize(bounds);
    if (!cJSON_IsArray(bounds) || !cJSON_IsArray(series) || n <= 0 || n > STATS_MAX_BUCKETS)
        return false;
    if (w->n_bounds == 0) {
        w->n_bounds = (size_t)n;
        for (int i = 0; i < n; i++)
            w->bounds_us[i] = cJSON_GetArrayItem(bounds, i)->valuedouble;
    } else if (w->n_bounds != (size_t)n) {
        return false; /* the node restarted with other buckets */
    }
    const cJSON *s;
    cJSON_ArrayForEach(s, series) {
        int op = op_index(text_or(s, "op", ""));
        if (op < 0)
            continue;
        const cJSON *b;
        cJSON_ArrayForEach(b, cJSON_GetObjectItemCaseSensitive(s, "buckets")) {
            const cJSON *at = cJSON_GetArrayItem(b, 0), *count = cJSON_GetArrayItem(b, 1);
            if (!cJSON_IsNumber(at) || !cJSON_IsNumber(count) || at->valueint < 0 ||
                at->valueint > n)
                return false;
            w->ops[op].buckets[at->valueint] += sign * count->valuedouble;
            w->ops[op].count += sign * count->valuedouble;
        }
    }
    return true;
}

/* The q-quantile of an operation's interval in ms, interpolated within its
 * bucket as Prometheus's histogram_quantile does; -1 without requests. */
static double quantile_ms(const node_window *w, int op, double q)
{
    const op_window *o = &w->ops[op];
    if (o->count < 1)
        return -1;
    double rank = q * o->count, seen = 0;
    for (size_t i = 0; i <= w->n_bounds; i++) {
        double in = o->buckets[i];
        if (seen + in >= rank && in > 0) {
            if (i == w->n_bounds) /* past the last bound */
                return w->bounds_us[w->n_bounds - 1] / 1000.0;
            double lo = i ? w->bounds_us[i - 1] : 0, hi = w->bounds_us[i];
            return (lo + (hi - lo) * (rank - seen) / in) / 1000.0;
        }
        seen += in;
    }
    return w->bounds_us[w->n_bounds - 1] / 1000.0;
}

static void format_ms(char *out, size_t size, double ms)
{
    if (ms < 0)
        snprintf(out, size, "-");
    else if (ms < 10)
        snprintf(out, size, "%.3f", ms);
    else
        snprintf(out, size, "%.1f", ms);
}

static int cmd_stats(kv *db, const struct cli *c)
{
    int code = EXIT_OK;
    cJSON *root = describe(db, "stats", &code);
    if (!root)
        return code;
    const cJSON *members = cJSON_GetObjectItemCaseSensitive(root, "members");
    int n;
    cJSON **first = member_descriptions(root, &n);
    if (!first) {
        cJSON_Delete(root);
        fprintf(stderr, PROG ": stats: out of memory\n");
        return EXIT_ERROR;
    }
    sleep_ms(c->interval_ms ? (long)c->interval_ms : 2000);
    cJSON *again = describe(db, "stats", &code);
    cJSON *out = cJSON_CreateArray();
    if (!g_json)
        printf("%-20s %10s %9s %9s %9s %9s %9s %9s %9s %9s\n", "NODE", "REQUESTS/S", "GET/S",
               "GET P50", "P99", "P999", "PUT/S", "PUT P50", "P99", "P999");
    for (int i = 0; i < n; i++) {
        const cJSON *m = cJSON_GetArrayItem(members, i);
        const char *id = text_or(m, "nodeId", "-");
        cJSON *second = again ? member_description(again, m) : NULL;
        const cJSON *l1 = cJSON_GetObjectItemCaseSensitive(first[i], "latency");
        const cJSON *l2 = cJSON_GetObjectItemCaseSensitive(second, "latency");
        node_window *w = calloc(1, sizeof *w);
        bool ok = w && cJSON_IsObject(l1) && cJSON_IsObject(l2) && add_latency(w, l2, 1) &&
                  add_latency(w, l1, -1);
        if (ok) {
            w->seconds = (number_or(l2, "atMs") - number_or(l1, "atMs")) / 1000.0;
            ok = w->seconds > 0;
        }
        cJSON *entry = cJSON_CreateObject();
        cJSON_AddStringToObject(entry, "nodeId", id);
        cJSON_AddItemToArray(out, entry);
        if (!ok) {
            cJSON_AddNullToObject(entry, "intervalSeconds");
            if (!g_json)
                printf("%-20s (could not be asked twice, or restarted between)\n", id);
            free(w);
            cJSON_Delete(second);
            continue;
        }
        double total = 0;
        for (int op = 0; op < STATS_OPS; op++)
            total += w->ops[op].count;
        cJSON_AddNumberToObject(entry, "intervalSeconds", w->seconds);
        cJSON_AddNumberToObject(entry, "requestsPerSecond", total / w->seconds);
        cJSON *ops = cJSON_AddObjectToObject(entry, "ops");
        for (int op = 0; op < STATS_OPS; op++) {
            cJSON *o = cJSON_AddObjectToObject(ops, stats_ops[op]);
            cJSON_AddNumberToObject(o, "perSecond", w->ops[op].count / w->seconds);
            static const double qs[] = {0.5, 0.99, 0.999};
            static const char *const names[] = {"p50Ms", "p99Ms", "p999Ms"};
            for (int k = 0; k < 3; k++) {
                double v = quantile_ms(w, op, qs[k]);
                if (v < 0)
                    cJSON_AddNullToObject(o, names[k]);
                else
                    cJSON_AddNumberToObject(o, names[k], v);
            }
        }
        if (!g_json) {
            char q[6][16];
            format_ms(q[0], sizeof q[0], quantile_ms(w, 0, 0.5));
            format_ms(q[1], sizeof q[1], quantile_ms(w, 0, 0.99));
            format_ms(q[2], sizeof q[2], quantile_ms(w, 0, 0.999));
            format_ms(q[3], sizeof q[3], quantile_ms(w, 1, 0.5));
            format_ms(q[4], sizeof q[4], quantile_ms(w, 1, 0.99));
            format_ms(q[5], sizeof q[5], quantile_ms(w, 1, 0.999));
            printf("%-20s %10.1f %9.1f %9s %9s %9s %9.1f %9s %9s %9s\n", id, total / w->seconds,
                   w->ops[0].count / w->seconds, q[0], q[1], q[2], w->ops[1].count / w->seconds,
                   q[3], q[4], q[5]);
        }
        free(w);
        cJSON_Delete(second);
    }
    if (!g_json)
        printf("latencies in ms, measured by each node from a request's arrival to its answer\n");
    print_json_as(g_json ? "nodes" : NULL, out);
    free_descriptions(first, n);
    cJSON_Delete(again);
    cJSON_Delete(root);
    return EXIT_OK;
}

/* ----------------------------------------------------------------- top */

/* The hottest keys of one kind, summed over the nodes: each node counts
 * the requests it coordinated, so a key's requests are spread over them. */
enum { TOP_MAX = 256, TOP_SHOWN = 10 };
typedef struct top_key {
    const cJSON *key; /* the node's {"key" or "keyBase64", ...} object */
    double count;
    int nodes;
} top_key;

static int top_key_desc(const void *a, const void *b)
{
    const top_key *x = a, *y = b;
    return x->count < y->count ? 1 : x->count > y->count ? -1 : 0;
}

static const char *key_text(const cJSON *k, bool *base64)
{
    const char *t = text_or(k, "key", NULL);
    *base64 = t == NULL;
    return t ? t : text_or(k, "keyBase64", "");
}

/* Adds the "reads" or "writes" of every description; returns the total. */
static double gather_top(cJSON *const *descs, int n, const char *kind, top_key *keys,
                         size_t *n_keys)
{
    double total = 0;
    *n_keys = 0;
    for (int i = 0; i < n; i++) {
        const cJSON *hk = cJSON_GetObjectItemCaseSensitive(descs[i], "hotKeys");
        const cJSON *part = cJSON_GetObjectItemCaseSensitive(hk, kind);
        total += number_or(part, "total");
        const cJSON *k;
        cJSON_ArrayForEach(k, cJSON_GetObjectItemCaseSensitive(part, "keys")) {
            bool b64, other_b64;
            const char *text = key_text(k, &b64);
            size_t at = 0;
            while (at < *n_keys &&
                   !(strcmp(key_text(keys[at].key, &other_b64), text) == 0 && other_b64 == b64))
                at++;
            if (at == *n_keys) {
                if (*n_keys == TOP_MAX)
                    continue;
                keys[(*n_keys)++] = (top_key){.key = k};
            }
            keys[at].count += number_or(k, "count");
            keys[at].nodes++;
        }
    }
    qsort(keys, *n_keys, sizeof *keys, top_key_desc);
    return total;
}

static void print_top(const char *kind, double total, const top_key *keys, size_t n, cJSON *json)
{
    cJSON *part = json ? cJSON_AddObjectToObject(json, kind) : NULL;
    if (part)
        cJSON_AddNumberToObject(part, "total", total);
    cJSON *list = part ? cJSON_AddArrayToObject(part, "keys") : NULL;
    if (!json)
        printf("%s: %.0f lately\n%10s %7s %5s  %s\n", kind, total, "COUNT", "SHARE", "NODES",
               "KEY");
    for (size_t i = 0; i < n && i < TOP_SHOWN; i++) {
        bool b64;
        const char *text = key_text(keys[i].key, &b64);
        double share = total > 0 ? keys[i].count / total : 0;
        if (list) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, b64 ? "keyBase64" : "key", text);
            cJSON_AddNumberToObject(o, "count", keys[i].count);
            cJSON_AddNumberToObject(o, "share", share);
            cJSON_AddNumberToObject(o, "nodes", keys[i].nodes);
            cJSON_AddItemToArray(list, o);
        } else {
            printf("%10.0f %6.1f%% %5d  %s%s%s\n", keys[i].count, share * 100, keys[i].nodes,
                   b64 ? "(base64) " : "", text,
                   cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(keys[i].key, "truncated"))
                       ? "..."
                       : "");
        }
    }
    if (!json && n == 0)
        printf("%10s\n", "(none)");
}

static int top_once(kv *db)
{
    int code = EXIT_OK;
    cJSON *root = describe(db, "top", &code);
    if (!root)
        return code;
    int n;
    cJSON **descs = member_descriptions(root, &n);
    top_key *keys = calloc(TOP_MAX, sizeof *keys);
    if (!descs || !keys) {
        free_descriptions(descs, n);
        free(keys);
        cJSON_Delete(root);
        fprintf(stderr, PROG ": top: out of memory\n");
        return EXIT_ERROR;
    }
    int asked = 0;
    for (int i = 0; i < n; i++)
        asked += descs[i] != NULL;
    cJSON *json = g_json ? cJSON_CreateObject() : NULL;
    if (json)
        cJSON_AddNumberToObject(json, "nodesAsked", asked);
    else
        printf("the hottest keys of %d of %d node(s), each counting the requests it "
               "coordinated\n", asked, n);
    static const char *const kinds[] = {"reads", "writes"};
    for (int k = 0; k < 2; k++) {
        size_t n_keys;
        double total = gather_top(descs, n, kinds[k], keys, &n_keys);
        print_top(kinds[k], total, keys, n_keys, json);
    }
    if (json) {
        char *text = cJSON_PrintUnformatted(json);
        if (text)
            printf("%s\n", text);
        free(text);
        cJSON_Delete(json);
    }
    free_descriptions(descs, n);
    free(keys);
    cJSON_Delete(root);
    return EXIT_OK;
}

/* ------------------------------------------------ predict-consistency */

/* The read delays predicted for without --t, as GET
 * /v1/consistency/prediction answers them. */
static const double predict_points_ms[] = {0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000};
#define N_PREDICT_POINTS (sizeof predict_points_ms / sizeof predict_points_ms[0])
enum { PREDICT_TRIALS = 20000, PREDICT_MAX_BOUNDS = 128 };

/* A description's "peerLatency", read into counts (n_peers x (n_bounds +
 * 1)). Returns the number of peers, or -1 when it is malformed. */
static int read_peer_latency(const cJSON *pl, double *bounds, size_t *n_bounds, uint64_t **counts)
{
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(pl, "boundsUs");
    const cJSON *peers = cJSON_GetObjectItemCaseSensitive(pl, "peers");
    int nb = cJSON_GetArraySize(b), np = cJSON_GetArraySize(peers);
    if (!cJSON_IsArray(b) || !cJSON_IsArray(peers) || nb < 1 || nb > PREDICT_MAX_BOUNDS)
        return -1;
    *n_bounds = (size_t)nb;
    for (int i = 0; i < nb; i++)
        bounds[i] = cJSON_GetNumberValue(cJSON_GetArrayItem(b, i));
    *counts = calloc((size_t)(np ? np : 1) * ((size_t)nb + 1), sizeof **counts);
    if (!*counts)
        return -1;
    for (int p = 0; p < np; p++) {
        const cJSON *bucket;
        cJSON_ArrayForEach(bucket, cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(peers, p),
                                                                    "buckets")) {
            double index = cJSON_GetNumberValue(cJSON_GetArrayItem(bucket, 0));
            double count = cJSON_GetNumberValue(cJSON_GetArrayItem(bucket, 1));
            if (!(index >= 0 && index <= nb && count >= 0))
                return -1;
            (*counts)[(size_t)p * ((size_t)nb + 1) + (size_t)index] = (uint64_t)count;
        }
    }
    return np;
}

static void print_prediction(const char *node, const kvi_pbs_input *in, const kvi_pbs_point *pt,
                             size_t n)
{
    if (g_json) {
        cJSON *o = cJSON_CreateObject(), *list = cJSON_CreateArray();
        cJSON_AddStringToObject(o, "nodeId", node);
        cJSON_AddNumberToObject(o, "replicas", in->n);
        cJSON_AddNumberToObject(o, "r", in->r);
        cJSON_AddNumberToObject(o, "w", in->w);
        cJSON_AddNumberToObject(o, "trials", in->trials);
        cJSON_AddNumberToObject(o, "peersMeasured", (double)in->n_peers);
        for (size_t i = 0; i < n; i++) {
            cJSON *p = cJSON_CreateObject();
            cJSON_AddNumberToObject(p, "tMs", pt[i].t_ms);
            cJSON_AddNumberToObject(p, "consistent", pt[i].consistent);
            if (isfinite(pt[i].versions_behind))
                cJSON_AddNumberToObject(p, "expectedVersionsBehind", pt[i].versions_behind);
            else
                cJSON_AddNullToObject(p, "expectedVersionsBehind");
            cJSON_AddItemToArray(list, p);
        }
        cJSON_AddItemToObject(o, "predictions", list);
        char *text = cJSON_PrintUnformatted(o);
        printf("%s\n", text ? text : "{}");
        free(text);
        cJSON_Delete(o);
        return;
    }
    printf("N=%u R=%u W=%u, from %s's round trips to %zu peer%s (%u simulated writes)\n", in->n,
           in->r, in->w, node, in->n_peers, in->n_peers == 1 ? "" : "s", in->trials);
    printf("%-14s %11s %16s\n", "READ AFTER ACK", "CONSISTENT", "VERSIONS BEHIND");
    for (size_t i = 0; i < n; i++) {
        char behind[32];
        if (isfinite(pt[i].versions_behind))
            snprintf(behind, sizeof behind, "%.3f", pt[i].versions_behind);
        else
            snprintf(behind, sizeof behind, "all stale");
        printf("%8g ms %14.2f%% %16s\n", pt[i].t_ms, pt[i].consistent * 100.0, behind);
    }
}

/* predict-consistency: Probabilistically Bounded Staleness (util/pbs.h)
 * from the node's own round trips to its peers, read from its
 * description: the same computation as GET /v1/consistency/prediction. */
static int cmd_predict(kv *db, const struct cli *c)
{
    int code = EXIT_OK;
    cJSON *root = describe(db, "predict-consistency", &code);
    if (!root)
        return code;
    cJSON *desc = root;
    if (c->node) {
        const cJSON *m = NULL, *each;
        cJSON_ArrayForEach(each, cJSON_GetObjectItemCaseSensitive(root, "members"))
            if (strcmp(text_or(each, "nodeId", ""), c->node) == 0)
                m = each;
        desc = m ? member_description(root, m) : NULL;
        if (!desc) {
            fprintf(stderr, PROG ": predict-consistency: %s %s\n", c->node,
                    m ? "did not answer" : "is no member of the cluster");
            cJSON_Delete(root);
            return EXIT_ERROR;
        }
    }
    double bounds[PREDICT_MAX_BOUNDS];
    uint64_t *counts = NULL;
    kvi_pbs_input in = {.r = c->pbs_r ? c->pbs_r : 1, .w = c->pbs_w ? c->pbs_w : 1,
                        .trials = PREDICT_TRIALS, .bounds_us = bounds};
    int np = read_peer_latency(cJSON_GetObjectItemCaseSensitive(desc, "peerLatency"), bounds,
                               &in.n_bounds, &counts);
    double rf = number_or(desc, "replicationFactor");
    int members = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(desc, "members"));
    in.n = (unsigned)(rf < members ? rf : members);
    kvi_pbs_peer peers[64];
    in.n_peers = np > 64 ? 64 : (size_t)(np > 0 ? np : 0);
    for (size_t i = 0; i < in.n_peers; i++)
        peers[i].counts = counts + i * (in.n_bounds + 1);
    in.peers = peers;
    kvi_pbs_point points[N_PREDICT_POINTS];
    size_t n_points = c->t_ms >= 0 ? 1 : N_PREDICT_POINTS;
    for (size_t i = 0; i < n_points; i++)
        points[i].t_ms = c->t_ms >= 0 ? c->t_ms : predict_points_ms[i];
    const char *why = "the node's description has no round trips to its peers";
    if (np < 0 || kvi_pbs_predict(points, n_points, &in, &why) != 0) {
        fprintf(stderr, PROG ": predict-consistency: %s\n", why);
        code = EXIT_ERROR;
    } else {
        print_prediction(text_or(desc, "nodeId", "?"), &in, points, n_points);
    }
    free(counts);
    if (desc != root)
        cJSON_Delete(desc);
    cJSON_Delete(root);
    return code;
}

static int cmd_top(kv *db, const struct cli *c)
{
    if (!c->watch)
        return top_once(db);
    for (;;) { /* until interrupted */
        int code = top_once(db);
        if (code != EXIT_OK)
            return code;
        printf("\n");
        fflush(stdout);
        sleep_ms(2000);
    }
}

/* --------------------------------------------------------------- batch */

/* Read a whole file ("-" = stdin) into a NUL-terminated buffer of at most
 * max bytes. On failure returns NULL with the reason in err ("what: ...") and
 * *too_big set when the file was larger than max. */
static char *read_file(const char *what, const char *path, size_t max, size_t *out_len,
                       bool *too_big, char *err, size_t err_size)
{
    *too_big = false;
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, err_size, "%s: cannot open %s: %s", what, path, strerror(errno));
        return NULL;
    }
    const char *name = f == stdin ? "stdin" : path;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (buf == NULL)
        snprintf(err, err_size, "%s: out of memory reading %s", what, name);
    while (buf != NULL) {
        if (len + 1 == cap) {
            if (len > max) { /* room for max + 1 bytes, so more than max came */
                snprintf(err, err_size, "%s: %s is larger than %zu MiB", what, name, max >> 20);
                *too_big = true;
                free(buf);
                buf = NULL;
                break;
            }
            size_t ncap = cap * 2 < max + 2 ? cap * 2 : max + 2;
            char *nb = realloc(buf, ncap);
            if (nb == NULL) {
                snprintf(err, err_size, "%s: out of memory reading %s", what, name);
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap = ncap;
        }
        size_t n = fread(buf + len, 1, cap - 1 - len, f);
        len += n;
        if (n == 0) {
            if (ferror(f)) {
                snprintf(err, err_size, "%s: cannot read %s: %s", what, name, strerror(errno));
                free(buf);
                buf = NULL;
            }
            break;
        }
    }
    if (f != stdin)
        fclose(f);
    if (buf != NULL) {
        buf[len] = '\0';
        *out_len = len;
    }
    return buf;
}

struct batch_op {
    kv_batch_op op;
    unsigned char *key; /* owned; NUL-terminated after key_len bytes */
    size_t key_len;
};

static const char *op_name(kv_batch_op op)
{
    return op == KV_BATCH_PUT ? "PUT" : op == KV_BATCH_GET ? "GET" : "DELETE";
}

/* A malformed batch file: a usage error without the usage line. */
static int batch_input_error(const char *path, size_t idx, const char *msg)
{
    char buf[512];
    if (idx == SIZE_MAX)
        snprintf(buf, sizeof buf, "batch %s: %s", path, msg);
    else
        snprintf(buf, sizeof buf, "batch %s: operation %zu: %s", path, idx, msg);
    fprintf(stderr, PROG ": %s\n", buf);
    if (g_json) {
        fputs("{\"error\":{\"code\":\"BAD_REQUEST\",\"message\":", stdout);
        put_json_cstr(stdout, buf);
        fputs("}}\n", stdout);
    }
    return EXIT_USAGE;
}

/* The bytes of a string field, decoded when base64. Returns a malloc'd,
 * NUL-terminated copy, or NULL with *err set (*err NULL: out of memory). */
static unsigned char *field_bytes(const cJSON *f, bool b64, size_t *len, const char **err)
{
    *err = NULL;
    if (!b64) {
        *len = strlen(f->valuestring);
        unsigned char *copy = malloc(*len + 1);
        if (copy != NULL)
            memcpy(copy, f->valuestring, *len + 1);
        return copy;
    }
    bool bad;
    unsigned char *out = base64_decode(f->valuestring, len, &bad);
    if (out == NULL && bad)
        *err = "is not valid base64";
    else if (out != NULL)
        out[*len] = '\0'; /* base64_decode leaves room */
    return out;
}

/* Append the operations of the parsed body to b, recording each one's kind
 * and key in ops. "encoding":"base64" covers the key and the value, as in the
 * HTTP API. Returns EXIT_OK or the exit status of an input error. */
static int batch_build(kv_batch *b, struct batch_op *ops, const cJSON *arr, const char *path)
{
    size_t i = 0;
    const cJSON *o;
    char msg[128];
    cJSON_ArrayForEach(o, arr) {
        if (!cJSON_IsObject(o))
            return batch_input_error(path, i, "not an object");
        const cJSON *jop = cJSON_GetObjectItemCaseSensitive(o, "op");
        const cJSON *jkey = cJSON_GetObjectItemCaseSensitive(o, "key");
        const cJSON *jval = cJSON_GetObjectItemCaseSensitive(o, "value");
        const cJSON *jttl = cJSON_GetObjectItemCaseSensitive(o, "ttl");
        const cJSON *jenc = cJSON_GetObjectItemCaseSensitive(o, "encoding");
        kv_batch_op kind;
        if (cJSON_IsString(jop) && strcasecmp(jop->valuestring, "PUT") == 0)
            kind = KV_BATCH_PUT;
        else if (cJSON_IsString(jop) && strcasecmp(jop->valuestring, "GET") == 0)
            kind = KV_BATCH_GET;
        else if (cJSON_IsString(jop) && strcasecmp(jop->valuestring, "DELETE") == 0)
            kind = KV_BATCH_DELETE;
        else
            return batch_input_error(path, i, "\"op\" must be \"PUT\", \"GET\" or \"DELETE\"");
        bool b64 = false;
        if (jenc != NULL && !cJSON_IsNull(jenc)) {
            if (cJSON_IsString(jenc) && strcmp(jenc->valuestring, "base64") == 0)
                b64 = true;
            else if (!cJSON_IsString(jenc) || (strcmp(jenc->valuestring, "utf-8") != 0 &&
                                               strcmp(jenc->valuestring, "utf8") != 0))
                return batch_input_error(path, i, "\"encoding\" must be \"base64\" or \"utf-8\"");
        }
        if (!cJSON_IsString(jkey))
            return batch_input_error(path, i, "\"key\" must be a string");
        const char *err;
        ops[i].op = kind;
        ops[i].key = field_bytes(jkey, b64, &ops[i].key_len, &err);
        if (ops[i].key == NULL) {
            if (err == NULL)
                return fail("batch", KV_ENOMEM, NULL);
            snprintf(msg, sizeof msg, "\"key\" %s", err);
            return batch_input_error(path, i, msg);
        }
        if (ops[i].key_len == 0)
            return batch_input_error(path, i, "\"key\" is empty");
        int rc;
        if (kind == KV_BATCH_PUT) {
            if (!cJSON_IsString(jval))
                return batch_input_error(path, i, "a PUT needs a string \"value\"");
            uint64_t ttl = 0;
            if (jttl != NULL && !cJSON_IsNull(jttl)) {
                double d = cJSON_IsNumber(jttl) ? jttl->valuedouble : -1;
                if (d < 0 || d > 9007199254740992.0 || d != (double)(uint64_t)d)
                    return batch_input_error(path, i, "\"ttl\" must be a non-negative integer");
                ttl = (uint64_t)d;
            }
            size_t vlen = 0;
            unsigned char *val = field_bytes(jval, b64, &vlen, &err);
            if (val == NULL) {
                if (err == NULL)
                    return fail("batch", KV_ENOMEM, NULL);
                snprintf(msg, sizeof msg, "\"value\" %s", err);
                return batch_input_error(path, i, msg);
            }
            rc = kv_batch_put(b, ops[i].key, ops[i].key_len, val, vlen, ttl);
            free(val);
        } else if (kind == KV_BATCH_GET) {
            rc = kv_batch_get(b, ops[i].key, ops[i].key_len);
        } else {
            rc = kv_batch_delete(b, ops[i].key, ops[i].key_len);
        }
        if (rc != KV_OK) {
            char what[64];
            snprintf(what, sizeof what, "batch: operation %zu", i);
            return fail(what, rc, NULL);
        }
        i++;
    }
    return EXIT_OK;
}

/* Print the results, in the shape of the HTTP API's batch results; returns 0
 * when every operation succeeded or found nothing, else the exit status of
 * the first that failed otherwise. */
static int batch_print(const kv_batch *b, const struct batch_op *ops, size_t n)
{
    int status = EXIT_OK;
    if (g_json)
        fputs("{\"results\":[", stdout);
    for (size_t i = 0; i < n; i++) {
        const kv_value *v = NULL;
        uint64_t version = 0;
        int rc = kv_batch_result(&v, &version, b, i);
        if (rc != KV_OK && rc != KV_ENOTFOUND && status == EXIT_OK)
            status = exit_for(rc);
        if (rc != KV_OK)
            v = NULL;
        const struct batch_op *op = &ops[i];
        if (g_json) {
            bool b64 = !is_json_text(op->key, op->key_len) || needs_base64(NULL, v);
            fprintf(stdout, "%s{\"op\":\"%s\",", i ? "," : "", op_name(op->op));
            put_json_bytes(stdout, "key", op->key, op->key_len, b64);
            fprintf(stdout, ",\"status\":\"%s\"", code_name(rc));
            if (v != NULL)
                put_json_value_fields(stdout, v, b64);
            else if (rc == KV_OK)
                fprintf(stdout, ",\"version\":%" PRIu64 "%s", version,
                        b64 ? ",\"encoding\":\"base64\"" : "");
            else if (b64)
                fputs(",\"encoding\":\"base64\"", stdout);
            fputc('}', stdout);
        } else {
            printf("%s ", op_name(op->op));
            fwrite(op->key, 1, op->key_len, stdout);
            if (rc != KV_OK) {
                printf(" %s\n", code_name(rc));
            } else if (v != NULL) {
                size_t len = 0;
                const void *data = kv_value_data(v, &len);
                printf(" version %" PRIu64 " value ", kv_value_version(v));
                fwrite(data, 1, len, stdout);
                fputc('\n', stdout);
            } else {
                printf(" version %" PRIu64 "\n", version);
            }
        }
    }
    if (g_json)
        fputs("]}\n", stdout);
    return status;
}

/* cJSON ends strings at a NUL, so "\u0000" would silently cut a value short:
 * refuse it, as the HTTP API does. Backslashes only occur inside strings in
 * valid JSON, so pairing them from the left finds every escape. */
static bool has_escaped_nul(const char *text, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (text[i] != '\\')
            continue;
        if (text[i + 1] == 'u' && len - i >= 6 && memcmp(text + i + 2, "0000", 4) == 0)
            return true;
        i++;
    }
    return false;
}

static int cmd_batch(kv *db, const struct cli *c)
{
    const char *path = c->args[0];
    size_t len = 0;
    bool too_big;
    char err[512];
    char *text = read_file("batch", path, MAX_BATCH_FILE, &len, &too_big, err, sizeof err);
    if (text == NULL) {
        fprintf(stderr, PROG ": %s\n", err);
        return g_json ? batch_input_error(path, SIZE_MAX, "cannot read the file") : EXIT_USAGE;
    }
    if (memchr(text, '\0', len) != NULL || has_escaped_nul(text, len)) {
        free(text);
        return batch_input_error(path, SIZE_MAX, "a NUL byte or \\u0000 in the JSON; send "
                                 "binary data base64 with \"encoding\": \"base64\"");
    }
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    if (root == NULL)
        return batch_input_error(path, SIZE_MAX, "not valid JSON");
    int status = EXIT_OK;
    kv_batch *b = NULL;
    struct batch_op *ops = NULL;
    size_t n = 0;
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "operations");
    if (!cJSON_IsObject(root) || !cJSON_IsArray(arr)) {
        status = batch_input_error(path, SIZE_MAX, "expected {\"operations\": [...]}");
        goto out;
    }
    n = (size_t)cJSON_GetArraySize(arr);
    if (n > KV_BATCH_MAX_OPS) {
        char msg[96];
        snprintf(msg, sizeof msg, "%zu operations, the limit is %u", n, KV_BATCH_MAX_OPS);
        status = batch_input_error(path, SIZE_MAX, msg);
        goto out;
    }
    if (n == 0) { /* nothing to run, nothing to ask a node */
        if (g_json)
            puts("{\"results\":[]}");
        goto out;
    }
    ops = calloc(n, sizeof *ops);
    int rc = ops ? kv_batch_new(&b) : KV_ENOMEM;
    if (rc != KV_OK) {
        status = fail("batch", rc, NULL);
        goto out;
    }
    status = batch_build(b, ops, arr, path);
    if (status != EXIT_OK)
        goto out;
    kv_write_options wo = write_opts(c);
    kv_read_options ro = read_opts(c);
    rc = kv_batch_execute(db, b, &wo, &ro);
    if (rc != KV_OK) {
        status = fail("batch", rc, NULL);
        goto out;
    }
    status = batch_print(b, ops, n);
out:
    for (size_t i = 0; ops != NULL && i < n; i++)
        free(ops[i].key);
    kv_batch_free(b);
    free(ops);
    cJSON_Delete(root);
    return status;
}

/* ----------------------------------------------------------- arguments */

static const struct command {
    const char *name;
    int nargs;
    bool ttl;
    int (*fn)(kv *, const struct cli *);
    const char *synopsis;
} commands[] = {
    {"put", 2, true, cmd_put, "put KEY VALUE [--ttl S]"},
    {"get", 1, false, cmd_get, "get KEY"},
    {"del", 1, false, cmd_del, "del KEY"},
    {"cas", 3, true, cmd_cas, "cas KEY EXPECTED_VERSION VALUE [--ttl S]"},
    {"batch", 1, false, cmd_batch, "batch FILE.json|-"},
    {"health", 0, false, cmd_health, "health"},
    {"scan", 0, false, cmd_scan, "scan [--limit N] [--keys-only] [--cursor C]"},
    {"members", 0, false, cmd_members, "members"},
    {"ring", 0, false, cmd_ring, "ring"},
    {"backup", 1, false, cmd_backup, "backup DIR"},
    {"repair", 0, false, cmd_repair, "repair [--node ID] [--wait]"},
    {"repair-status", 0, false, cmd_repair_status, "repair-status [--ranges]"},
    {"decommission", 0, false, cmd_decommission, "decommission [--node ID]"},
    {"removenode", 1, false, cmd_removenode, "removenode ID"},
    {"topology-abort", 0, false, cmd_topology_abort, "topology-abort"},
    {"cleanup", 0, false, cmd_cleanup, "cleanup [--node ID]"},
    {"streams", 0, false, cmd_streams, "streams"},
    {"stats", 0, false, cmd_stats, "stats [--interval S]"},
    {"top", 0, false, cmd_top, "top [--watch]"},
    {"predict-consistency", 0, false, cmd_predict,
     "predict-consistency [--r R] [--w W] [--t MS] [--node ID]"},
};

static uint64_t parse_uint(const char *flag, const char *s, uint64_t max)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s < '0' || *s > '9' || *end != '\0' || errno != 0 || v > max) {
        char msg[160];
        snprintf(msg, sizeof msg, "%s needs a non-negative integer up to %" PRIu64 ", got '%%s'",
                 flag, max);
        usage_error(msg, s);
    }
    return v;
}

/* Flags that take a value: --name VALUE or --name=VALUE (-w VALUE, -wVALUE). */
static bool flag_value(char **argv, int argc, int *i, const char *longname,
                       const char *shortname, const char **out)
{
    const char *arg = argv[*i];
    size_t ln = strlen(longname);
    if (strncmp(arg, longname, ln) == 0 && (arg[ln] == '\0' || arg[ln] == '=')) {
        if (arg[ln] == '=') {
            *out = arg + ln + 1;
            return true;
        }
    } else if (shortname != NULL && strncmp(arg, shortname, 2) == 0) {
        if (arg[2] != '\0') {
            *out = arg + 2 + (arg[2] == '=');
            return true;
        }
    } else {
        return false;
    }
    if (*i + 1 >= argc)
        usage_error("%s needs a value", arg);
    *out = argv[++*i];
    return true;
}

static const struct command *parse_args(int argc, char **argv, struct cli *c)
{
    memset(c, 0, sizeof *c);
    c->t_ms = -1;
    bool flags_done = false;
    const char *positional[MAX_ARGS + 1];
    bool literal[MAX_ARGS + 1];
    int npos = 0;
    /* -w first, so that usage errors found before it are JSON too. */
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
        const char *v;
        if ((strcmp(argv[i], "-w") == 0 || strcmp(argv[i], "--write-out") == 0) && i + 1 < argc)
            g_json = strcmp(argv[i + 1], "json") == 0;
        else if (strncmp(argv[i], "--write-out=", 12) == 0 || strncmp(argv[i], "-w", 2) == 0) {
            v = argv[i] + (argv[i][1] == 'w' ? 2 + (argv[i][2] == '=') : 12);
            g_json = strcmp(v, "json") == 0;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *val;
        if (flags_done || arg[0] != '-' || strcmp(arg, "-") == 0) {
            if (npos == MAX_ARGS + 1)
                usage_error("too many arguments (at '%s')", arg);
            literal[npos] = flags_done;
            positional[npos++] = arg;
        } else if (strcmp(arg, "--") == 0) {
            flags_done = true;
        } else if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            usage(stdout);
            exit(EXIT_OK);
        } else if (strcmp(arg, "--version") == 0) {
            printf(PROG " %s\n", kv_version(NULL, NULL, NULL));
            exit(EXIT_OK);
        } else if (flag_value(argv, argc, &i, "--context", NULL, &val)) {
            c->context_b64 = val;
        } else if (flag_value(argv, argc, &i, "--endpoints", NULL, &val)) {
            if (*val == '\0')
                usage_error("--endpoints needs HOST:PORT[,HOST:PORT...]%s", "");
            c->endpoints = val;
        } else if (flag_value(argv, argc, &i, "--write-out", "-w", &val)) {
            if (strcmp(val, "json") == 0)
                c->json = true;
            else if (strcmp(val, "text") == 0)
                c->json = false;
            else
                usage_error("-w must be text or json, got '%s'", val);
        } else if (flag_value(argv, argc, &i, "--timeout", NULL, &val)) {
            c->timeout_ms = (uint32_t)parse_uint("--timeout", val, 3600000);
            if (c->timeout_ms == 0)
                usage_error("--timeout must be at least 1 ms%s", "");
        } else if (flag_value(argv, argc, &i, "--consistency", NULL, &val)) {
            if (strcmp(val, "one") == 0)
                c->level = KV_CONSISTENCY_ONE;
            else if (strcmp(val, "quorum") == 0)
                c->level = KV_CONSISTENCY_QUORUM;
            else if (strcmp(val, "all") == 0)
                c->level = KV_CONSISTENCY_ALL;
            else if (strcmp(val, "serial") == 0)
                c->level = KV_CONSISTENCY_SERIAL;
            else
                usage_error("--consistency must be one, quorum, all or serial, got '%s'", val);
        } else if (strcmp(arg, "--home-only") == 0) {
            c->home_only = true;
        } else if (flag_value(argv, argc, &i, "--limit", NULL, &val)) {
            c->limit = parse_uint("--limit", val, UINT64_MAX);
            if (c->limit == 0)
                usage_error("--limit must be at least 1%s", "");
            c->has_limit = true;
        } else if (flag_value(argv, argc, &i, "--node", NULL, &val)) {
            if (*val == '\0')
                usage_error("--node needs a node id%s", "");
            c->node = val;
        } else if (strcmp(arg, "--wait") == 0) {
            c->wait = true;
        } else if (strcmp(arg, "--ranges") == 0) {
            c->ranges = true;
        } else if (strcmp(arg, "--watch") == 0) {
            c->watch = true;
        } else if (flag_value(argv, argc, &i, "--r", NULL, &val)) {
            c->pbs_r = (unsigned)parse_uint("--r", val, 64);
            if (c->pbs_r == 0)
                usage_error("--r must be 1..64%s", "");
        } else if (flag_value(argv, argc, &i, "--w", NULL, &val)) {
            c->pbs_w = (unsigned)parse_uint("--w", val, 64);
            if (c->pbs_w == 0)
                usage_error("--w must be 1..64%s", "");
        } else if (flag_value(argv, argc, &i, "--t", NULL, &val)) {
            char *end = NULL;
            c->t_ms = strtod(val, &end);
            if (end == val || *end != '\0' || !(c->t_ms >= 0 && c->t_ms <= 3600000))
                usage_error("--t needs milliseconds, 0..3600000 (decimals allowed), got '%s'",
                            val);
        } else if (flag_value(argv, argc, &i, "--interval", NULL, &val)) {
            c->interval_ms = parse_uint("--interval", val, 3600) * 1000;
            if (c->interval_ms == 0)
                usage_error("--interval must be 1..3600 seconds%s", "");
        } else if (strcmp(arg, "--keys-only") == 0) {
            c->keys_only = true;
        } else if (flag_value(argv, argc, &i, "--cursor", NULL, &val)) {
            c->cursor = val;
        } else if (flag_value(argv, argc, &i, "--policy", NULL, &val)) {
            if (strcmp(val, "lww") == 0)
                c->policy = KV_POLICY_LWW;
            else if (strcmp(val, "siblings") == 0)
                c->policy = KV_POLICY_SIBLINGS;
            else
                usage_error("--policy must be lww or siblings, got '%s'", val);
        } else if (strcmp(arg, "--verbose") == 0 || strcmp(arg, "-v") == 0) {
            c->verbose = true;
        } else if (flag_value(argv, argc, &i, "--token-file", NULL, &val)) {
            c->token_file = val;
        } else if (strcmp(arg, "--tls") == 0) {
            c->tls = true;
        } else if (flag_value(argv, argc, &i, "--tls-ca", NULL, &val)) {
            c->tls_ca = val;
        } else if (flag_value(argv, argc, &i, "--tls-cert", NULL, &val)) {
            c->tls_cert = val;
        } else if (flag_value(argv, argc, &i, "--tls-key", NULL, &val)) {
            c->tls_key = val;
        } else if (flag_value(argv, argc, &i, "--ttl", NULL, &val)) {
            c->ttl_s = parse_uint("--ttl", val, UINT64_MAX / 1000);
            c->has_ttl = true;
        } else {
            usage_error("unknown flag '%s'", arg);
        }
    }
    g_json = c->json;
    if (npos == 0)
        usage_error("missing command%s", "");
    c->cmd = positional[0];
    const struct command *cmd = NULL;
    for (size_t k = 0; k < sizeof commands / sizeof commands[0]; k++)
        if (strcmp(commands[k].name, c->cmd) == 0)
            cmd = &commands[k];
    if (cmd == NULL)
        usage_error("unknown command '%s'", c->cmd);
    if (npos - 1 != cmd->nargs) {
        char msg[128];
        snprintf(msg, sizeof msg, "%s arguments; usage: " PROG " %%s",
                 npos - 1 < cmd->nargs ? "missing" : "too many");
        usage_error(msg, cmd->synopsis);
    }
    if (c->has_ttl && !cmd->ttl)
        usage_error("--ttl applies to put and cas, not %s", cmd->name);
    if (c->verbose && cmd->fn != cmd_get)
        usage_error("--verbose applies to get, not %s", cmd->name);
    if ((c->has_limit || c->keys_only || c->cursor != NULL) && cmd->fn != cmd_scan)
        usage_error("--limit, --keys-only and --cursor apply to scan, not %s", cmd->name);
    if (c->wait && cmd->fn != cmd_repair)
        usage_error("--wait applies to repair, not %s", cmd->name);
    if (c->node != NULL && cmd->fn != cmd_repair && cmd->fn != cmd_decommission &&
        cmd->fn != cmd_cleanup)
        usage_error("--node applies to repair, decommission and cleanup, not %s", cmd->name);
    if (c->ranges && cmd->fn != cmd_repair_status)
        usage_error("--ranges applies to repair-status, not %s", cmd->name);
    if (c->interval_ms && cmd->fn != cmd_stats)
        usage_error("--interval applies to stats, not %s", cmd->name);
    if (c->watch && cmd->fn != cmd_top)
        usage_error("--watch applies to top, not %s", cmd->name);
    if (c->watch && c->json)
        usage_error("--watch prints text; -w json takes one reading%s", "");
    if (cmd->fn == cmd_scan && c->level == KV_CONSISTENCY_SERIAL)
        usage_error("scan: --consistency must be one, quorum or all%s", "");
    if (c->context_b64 != NULL && cmd->fn != cmd_put && cmd->fn != cmd_del)
        usage_error("--context applies to put and del, not %s", cmd->name);
    for (int k = 1; k < npos; k++) {
        c->args[k - 1] = positional[k];
        c->literal[k - 1] = literal[k];
    }
    c->nargs = npos - 1;
    /* The library would refuse an empty key (KV_EINVAL, exit 1); it is the
     * command line's mistake. */
    if ((cmd->fn == cmd_put || cmd->fn == cmd_get || cmd->fn == cmd_del ||
         cmd->fn == cmd_cas) && c->args[0][0] == '\0')
        usage_error("%s: KEY must not be empty", cmd->name);
    if (cmd->fn == cmd_backup) {
        const char *dir = c->args[0];
        if (dir[0] != '/')
            usage_error("backup: DIR must be an absolute path (it is a path on each node's "
                        "machine), got '%s'", dir);
        if (strlen(dir) > KV_BACKUP_MAX_PATH)
            usage_error("backup: DIR is over the limit of %s bytes", BACKUP_MAX_TEXT);
    }
    if (cmd->fn == cmd_cas) {
        const char *vs = c->args[1];
        char *end;
        errno = 0;
        unsigned long long v = strtoull(vs, &end, 10);
        if (*vs < '0' || *vs > '9' || *end != '\0' || errno != 0)
            usage_error("cas: EXPECTED_VERSION must be a non-negative integer, got '%s'", vs);
        c->expected = v;
    }
    return cmd;
}

/* Split the comma-separated list in place into ep[]; returns the count. */
static size_t split_endpoints(char *list, const char **ep)
{
    size_t n = 0;
    for (char *p = list; p != NULL;) {
        char *comma = strchr(p, ',');
        if (comma != NULL)
            *comma = '\0';
        if (*p != '\0') {
            if (n == MAX_ENDPOINTS)
                usage_error("more than %s endpoints", "64");
            ep[n++] = p;
        }
        p = comma ? comma + 1 : NULL;
    }
    return n;
}

/* A failure before anything is sent: the message on stderr, and in JSON
 * the error object. Returns status. */
static int input_fail(const char *code, int status, const char *msg)
{
    fprintf(stderr, PROG ": %s\n", msg);
    if (g_json) {
        fprintf(stdout, "{\"error\":{\"code\":\"%s\",\"message\":", code);
        put_json_cstr(stdout, msg);
        fputs("}}\n", stdout);
    }
    return status;
}

/* The VALUE of put and cas, args[idx]: "-" reads stdin, "@FILE" reads FILE,
 * unless it came after "--"; anything else is the value itself. Exits on
 * failure: 2 when the file cannot be read, 1 when it is over the library's
 * ceiling on a value. */
static void load_value(struct cli *c, int idx)
{
    const char *arg = c->args[idx];
    const char *path = NULL;
    if (!c->literal[idx] && strcmp(arg, "-") == 0)
        path = "-";
    else if (!c->literal[idx] && arg[0] == '@')
        path = arg + 1;
    if (path == NULL) {
        c->value = (const unsigned char *)arg;
        c->value_len = strlen(arg);
        return;
    }
    if (*path == '\0')
        usage_error("%s: VALUE \"@\" needs a file name (@FILE); after \"--\" it is literal",
                    c->cmd);
    char err[512];
    bool too_big;
    size_t len = 0;
    char *buf = read_file(c->cmd, path, KV_MAX_VALUE_SIZE_LIMIT, &len, &too_big, err, sizeof err);
    if (buf == NULL) {
        if (too_big) {
            size_t n = strlen(err);
            snprintf(err + n, sizeof err - n, ", the library's ceiling on a value");
            exit(input_fail("TOO_BIG", EXIT_ERROR, err));
        }
        exit(input_fail("USAGE", EXIT_USAGE, err));
    }
    c->value_buf = (unsigned char *)buf;
    c->value = c->value_buf;
    c->value_len = len;
}

int main(int argc, char **argv)
{
    struct cli c;
    const struct command *cmd = parse_args(argc, argv, &c);
    if (c.context_b64 != NULL) {
        bool bad;
        c.context = base64_decode(c.context_b64, &c.context_len, &bad);
        if (c.context == NULL && !bad)
            return fail("startup", KV_ENOMEM, NULL);
        if (c.context == NULL || c.context_len == 0)
            usage_error("--context needs the base64 \"context\" of a get -w json, got '%s'",
                        c.context_b64);
    }
    if (cmd->fn == cmd_put)
        load_value(&c, 1);
    else if (cmd->fn == cmd_cas)
        load_value(&c, 2);

    const char *list = c.endpoints;
    g_endpoints_from = "from --endpoints";
    if (list == NULL) {
        list = getenv("KVCTL_ENDPOINTS");
        g_endpoints_from = "from $KVCTL_ENDPOINTS";
        if (list == NULL || *list == '\0') {
            list = DEFAULT_ENDPOINT;
            g_endpoints_from = "the default";
        }
    }
    g_endpoints = list;
    char *copy = strdup(list);
    if (copy == NULL)
        return fail("startup", KV_ENOMEM, NULL);
    const char *ep[MAX_ENDPOINTS];
    size_t nep = split_endpoints(copy, ep);
    if (nep == 0)
        usage_error("no endpoint in '%s'", list);

    kv_client_options co = KV_CLIENT_OPTIONS_INIT;
    co.policy = c.policy;
    if (c.timeout_ms != 0) {
        co.connect_timeout_ms = c.timeout_ms;
        co.request_timeout_ms = c.timeout_ms;
    }
    char **tokens = NULL;
    size_t n_tokens = 0;
    if (c.token_file) {
        char err[512];
        int warning = 0;
        if (kvt_read_token_file(c.token_file, &tokens, &n_tokens, &warning, err, sizeof err) != 0)
            usage_error("--token-file: %s", err);
        co.auth_token = tokens[0];
    } else if (getenv("KVCTL_TOKEN") && *getenv("KVCTL_TOKEN")) {
        co.auth_token = getenv("KVCTL_TOKEN");
    }
    if (!c.tls_cert != !c.tls_key)
        usage_error("--tls-cert and --tls-key go together%s", "");
    char *pem[3] = {NULL, NULL, NULL};
    const char *pem_files[3] = {c.tls_ca, c.tls_cert, c.tls_key};
    for (int k = 0; k < 3; k++) {
        if (!pem_files[k])
            continue;
        char err[512];
        unsigned char *text = NULL;
        size_t len = 0;
        if (kvt_read_secret_file(pem_files[k], &text, &len, NULL, err, sizeof err) != 0)
            usage_error("%s", err);
        text[len] = 0;
        pem[k] = (char *)text;
    }
    co.tls = c.tls;
    co.tls_ca_pem = pem[0];
    co.tls_cert_pem = pem[1];
    co.tls_key_pem = pem[2];
    kv *db = NULL;
    g_client_opts = &co;
    int rc = kv_client_open(&db, ep, nep, &co);
    int status;
    if (rc != KV_OK) {
        /* An endpoint the library cannot parse is the caller's mistake. */
        status = fail("open", rc, NULL);
        if (rc == KV_EINVAL)
            status = EXIT_USAGE;
    } else {
        status = cmd->fn(db, &c);
    }
    kv_close(db);
    kvt_free_tokens(tokens, n_tokens);
    for (int k = 0; k < 3; k++)
        free(pem[k]);
    free(copy);
    free(c.value_buf);
    free(c.context);
    if (fflush(stdout) != 0 && status == EXIT_OK) {
        fprintf(stderr, PROG ": writing the output: %s\n", strerror(errno));
        status = EXIT_ERROR;
    }
    return status;
}
