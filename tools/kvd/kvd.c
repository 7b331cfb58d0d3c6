/*
 * kvd - the libkv storage node daemon: a thin main() around kv_node_start.
 *
 *   kvd --data DIR --listen HOST:PORT --node-id ID [FLAGS]
 *   kvd --config FILE.json [FLAGS]
 *   kvd --restore-from BACKUP_DIR --data DIR ... (copies a backup in first)
 *
 * usage() lists every flag with its default and config key (kvd --help);
 * docs/CONFIG.md explains each, docs/DEPLOY.md runs a cluster with them.
 *
 * Logs are JSON lines on stderr. SIGTERM or SIGINT stops it cleanly: the
 * node answers the requests it has read, closes its connections and syncs
 * the store before kvd exits 0. Bad flags exit 2; a node that cannot start
 * (port in use, store locked) exits 1 with the reason.
 */
#include <malloc.h>
#include <errno.h>
#include <stdarg.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <kv/kv.h>

#include "../common/credentials.h"

typedef struct settings {
    char *data;
    char *listen;
    char *http;
    char *node_id;
    kv_sync_policy sync;
    kv_log_level log_level;
    unsigned io_threads;
    unsigned slow_request_ms;
    unsigned http_threads;
    uint32_t max_key_size;
    uint32_t max_value_size;
    uint64_t max_buffered;   /* --max-buffered-bytes */
    uint64_t row_cache;      /* --row-cache-bytes; 0: none */
    uint64_t grace_s;        /* --tombstone-grace; 0: the default; KV_GRACE_NONE: none */
    char **peers;      /* binary addresses of the cluster's members */
    size_t n_peers;
    char **seeds;      /* binary addresses of members to join through */
    size_t n_seeds;
    unsigned hint_window_s;
    unsigned handoff_kib_per_s;
    unsigned ae_interval_s;       /* 0: the default; UINT32_MAX: never */
    uint64_t repair_bytes_per_s;
    uint64_t stream_bytes_per_s;
    unsigned digest_bits;         /* 0: the default */
    unsigned failure_pause_ms;
    unsigned replicas;
    unsigned vnodes;
    int siblings;            /* --policy siblings */
    unsigned internode_timeout_ms;
    char *secret_file;       /* --cluster-secret-file */
    char *token_file;        /* --client-token-file */
    char *tls_cert;          /* --tls-cert, --tls-key, --tls-ca: PEM files */
    char *tls_key;
    char *tls_ca;
    int insecure;            /* --insecure */
    char *restore_from;      /* --restore-from: a backup to copy in first */
    char *replace_id;        /* --replace: the dead member this process replaces */
    char *metadata;          /* --metadata etcd://...: the topology kept in etcd */
} settings;

/* ------------------------------------------------------------- logging */

/* A message of the library that is an event's fields as a JSON object
 * (the slow-request log): its fields go into the line's own object. */
static int is_event(const char *message)
{
    static const char prefix[] = "{\"event\":\"";
    size_t len = strlen(message);
    return strncmp(message, prefix, sizeof prefix - 1) == 0 && message[len - 1] == '}';
}

/* Writes one JSON line with a single write(2), so lines from the library's
 * threads never interleave. */
static void log_line(kv_log_level level, const char *message, void *ctx)
{
    (void)ctx;
    static const char *const names[] = {"error", "warn", "info", "debug"};
    char line[2048];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line,
                     "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\",",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, names[level <= KV_LOG_DEBUG ? level : 0]);
    if (is_event(message) && strlen(message) < sizeof line - (size_t)n - 2) {
        n += snprintf(line + n, sizeof line - (size_t)n, "%s\n", message + 1);
        if (write(STDERR_FILENO, line, (size_t)n) < 0) {
            /* Nowhere left to report it. */
        }
        return;
    }
    n += snprintf(line + n, sizeof line - (size_t)n, "\"msg\":\"");
    for (const unsigned char *p = (const unsigned char *)message;
         *p && n < (int)sizeof line - 16; p++) {
        if (*p == '"' || *p == '\\')
            n += snprintf(line + n, sizeof line - (size_t)n, "\\%c", *p);
        else if (*p < 0x20)
            n += snprintf(line + n, sizeof line - (size_t)n, "\\u%04x", *p);
        else
            line[n++] = (char)*p;
    }
    n += snprintf(line + n, sizeof line - (size_t)n, "\"}\n");
    if (write(STDERR_FILENO, line, (size_t)n) < 0) {
        /* Nowhere left to report it. */
    }
}

/* kvd's own lines obey --log-level (or the config's logLevel) as the
 * library's do; warnings about the flags themselves come before it is known
 * and are always written. */
static kv_log_level g_log_level = KV_LOG_DEBUG;

static void logf_(kv_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(kv_log_level level, const char *fmt, ...)
{
    if (level > g_log_level)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_line(level, msg, NULL);
}

/* ------------------------------------------------------------- settings */

static int parse_policy(const char *v, int *siblings)
{
    if (strcmp(v, "lww") == 0)
        *siblings = 0;
    else if (strcmp(v, "siblings") == 0)
        *siblings = 1;
    else
        return -1;
    return 0;
}

/* Every flag, with its default and its config key; docs/CONFIG.md says
 * more. tests/tools/test_kvctl.sh checks that every flag parse_args knows
 * is here. */
static void usage(FILE *f)
{
    fputs("usage: kvd --data DIR --listen HOST:PORT --node-id ID [FLAGS]\n"
          "       kvd --config FILE.json [FLAGS]\n"
          "       kvd --help | --version\n"
          "\n"
          "Flags override the config file's keys (in brackets). Sizes in bytes.\n"
          "\n"
          "The node:\n"
          "  --data DIR                 the store's directory, created if missing; required [data]\n"
          "  --listen HOST:PORT         the binary protocol's address, given out to members and\n"
          "                             clients (not 0.0.0.0 in a cluster); required [listen]\n"
          "  --node-id ID               this node's id, unique in its cluster; required [nodeId]\n"
          "  --http HOST:PORT           serve the HTTP/JSON API there (default: no HTTP) [http]\n"
          "  --config FILE.json         read these settings from a JSON object first (default: none)\n"
          "  --restore-from DIR         before starting, copy the backup in DIR (kvctl backup's\n"
          "                             DIR/<node-id>, or a node's own snapshot directory) into\n"
          "                             --data, which must be missing or empty; a flag only, no\n"
          "                             config key: a restore is done once (default: none)\n"
          "  --replace ID               take the place of dead member ID (its id and tokens) on\n"
          "                             an empty --data: fetch the topology from --seeds, stream\n"
          "                             ID's ranges from the survivors, repair, then serve; sets\n"
          "                             --node-id; a flag only (default: none)\n"
          "\n"
          "The cluster (docs/CLUSTER.md):\n"
          "  --peers HOST:PORT,...      every member's binary address (default: none) [peers]\n"
          "  --seeds HOST:PORT,...      members to join through; the first node lists itself\n"
          "                             (default: none; with neither, a node of its own) [seeds]\n"
          "  --metadata etcd://HOST:PORT[,HOST:PORT...]/PREFIX\n"
          "                             keep the topology record in etcd (v3 API), the same on\n"
          "                             every member (default: among the members) [metadata]\n"
          "  --replicas N               replication factor, 1..16, the same on every member\n"
          "                             (default 3) [replicas]\n"
          "  --vnodes V                 virtual nodes per member, 1..4096, the same on every member\n"
          "                             (default 256) [vnodes]\n"
          "  --policy lww|siblings      how the HTTP API resolves concurrent writes (default lww)\n"
          "                             [policy]\n"
          "  --internode-timeout MS     timeout of requests between members, 1..600000\n"
          "                             (default 2000) [internodeTimeoutMs]\n"
          "  --failure-pause MS         silence a member is allowed before the failure detector\n"
          "                             may suspect it, 1..600000 (default 2000) [failurePauseMs]\n"
          "  --hint-window SECONDS      hints older than this are dropped (default 10800, 3 h)\n"
          "                             [hintWindowS]\n"
          "  --handoff-rate KIB_PER_S   hinted handoff replay budget (default 4096) [handoffKibPerS]\n"
          "  --ae-interval SECONDS      how often the node runs an anti-entropy exchange with the\n"
          "                             next member, jittered; 1..604800, or 0 for none (repairs\n"
          "                             only when asked: kvctl repair) (default 60) [aeIntervalS]\n"
          "  --repair-rate BYTES_PER_S  what an exchange may send and receive, 1024..1099511627776\n"
          "                             (default 16777216, 16 MiB/s) [repairRate]\n"
          "  --stream-rate BYTES_PER_S  what a joining node may stream in, 1024..1099511627776\n"
          "                             (default 33554432, 32 MiB/s) [streamRate]\n"
          "  --digest-bits N            the anti-entropy digest's 2^N segments, 4..24, the same\n"
          "                             on every member (default 18: 4 MiB) [digestBits]\n"
          "\n"
          "Storage and limits:\n"
          "  --sync always|periodic|none  when the write-ahead log is synced: before each write is\n"
          "                             acknowledged, every 100 ms, or when the OS will\n"
          "                             (default always) [sync]\n"
          "  --max-key-size BYTES       1..65536 (default 1024) [maxKeySize]\n"
          "  --max-value-size BYTES     0..67108864, 0 meaning the default (default 1048576,\n"
          "                             1 MiB) [maxValueSize]\n"
          "  --max-buffered-bytes BYTES what the binary protocol's connections may hold in all,\n"
          "                             1048576..68719476736 (default 268435456, 256 MiB)\n"
          "                             [maxBufferedBytes]\n"
          "  --tombstone-grace SECONDS  how long a deleted key's tombstone is kept past the hint\n"
          "                             window and its replicas' repairs before it is purged\n"
          "                             (alone: past the delete), 0..315360000 (default 86400)\n"
          "                             [tombstoneGraceS]\n"
          "  --row-cache-bytes BYTES    the latest records of recently used keys, held in memory\n"
          "                             in front of RocksDB; 0..1099511627776, 0 meaning none\n"
          "                             (default 67108864, 64 MiB) [rowCacheBytes]\n"
          "  --io-threads N             binary protocol I/O threads, 1..64 (default 2) [ioThreads]\n"
          "  --slow-request MS          requests this slow or slower are counted and logged once\n"
          "                             a minute at warn, 1..3600000 (default 500)\n"
          "                             [slowRequestMs]\n"
          "  --http-threads N           HTTP threads, 2..64 (default 2) [httpThreads]\n"
          "\n"
          "Security (docs/SECURITY.md):\n"
          "  --cluster-secret-file FILE the secret members prove to each other (default: none)\n"
          "                             [clusterSecretFile]\n"
          "  --client-token-file FILE   the tokens clients must show, one a line (default: none:\n"
          "                             no token needed) [clientTokenFile]\n"
          "  --tls-cert FILE            PEM certificate: both protocols speak TLS only\n"
          "                             (default: none, plain TCP and HTTP) [tlsCert]\n"
          "  --tls-key FILE             its PEM private key, with --tls-cert (default: none) [tlsKey]\n"
          "  --tls-ca FILE              the CA of the members' certificates; required in a\n"
          "                             cluster on TLS (default: none) [tlsCa]\n"
          "  --insecure                 listen beyond loopback with neither secret nor tokens\n"
          "                             (default off: kvd refuses to) [insecure]\n"
          "\n"
          "Logs (JSON lines on stderr):\n"
          "  --log-level error|warn|info|debug  (default info) [logLevel]\n"
          "\n"
          "  -h, --help                 this help\n"
          "  --version                  print \"kvd VERSION\" (the library's) and exit\n"
          "\n"
          "Exit status: 0 after SIGTERM or SIGINT (a clean stop), 1 when the node cannot start,\n"
          "2 for bad flags or a bad config file.\n",
          f);
}

static int bad(const char *fmt, const char *arg)
{
    fprintf(stderr, "kvd: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nusage: kvd --data DIR --listen HOST:PORT --node-id ID [FLAGS]\n"
                    "Try 'kvd --help' for every flag and its default.\n");
    return 2;
}

static int parse_sync(const char *s, kv_sync_policy *out)
{
    if (strcmp(s, "always") == 0)
        *out = KV_SYNC_ALWAYS;
    else if (strcmp(s, "periodic") == 0)
        *out = KV_SYNC_PERIODIC;
    else if (strcmp(s, "none") == 0)
        *out = KV_SYNC_NONE;
    else
        return -1;
    return 0;
}

static int parse_level(const char *s, kv_log_level *out)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (kv_log_level)i;
            return 0;
        }
    return -1;
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (!*s || *end || errno || v > max || s[0] == '-')
        return -1;
    *out = v;
    return 0;
}

static void set_string(char **field, const char *value)
{
    free(*field);
    *field = strdup(value);
}

/* A list of addresses: --peers or --seeds. */
static void clear_list(char ***list, size_t *n)
{
    for (size_t i = 0; i < *n; i++)
        free((*list)[i]);
    free(*list);
    *list = NULL;
    *n = 0;
}

static int add_addr(char ***list, size_t *n, const char *addr, size_t len)
{
    if (len == 0)
        return -1;
    char **grown = realloc(*list, (*n + 1) * sizeof *grown);
    if (!grown)
        return -1;
    *list = grown;
    grown[*n] = strndup(addr, len);
    return grown[(*n)++] ? 0 : -1;
}

/* "HOST:PORT,HOST:PORT,..." */
static int set_list(char ***list, size_t *n, const char *text)
{
    clear_list(list, n);
    for (const char *p = text; *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (add_addr(list, n, p, len) != 0)
            return -1;
        p += len + (comma ? 1 : 0);
        if (comma && !*p)
            return -1; /* a trailing comma */
    }
    return *n ? 0 : -1;
}

/* A config key holding an array of "HOST:PORT" strings. 0, or 2 after a
 * message. */
static int load_list(char ***list, size_t *n, const cJSON *item, const char *path)
{
    clear_list(list, n);
    for (const cJSON *p = item->child; p; p = p->next)
        if (!cJSON_IsString(p) || add_addr(list, n, p->valuestring, strlen(p->valuestring)) != 0) {
            fprintf(stderr, "kvd: config %s: %s must be an array of \"HOST:PORT\" strings\n",
                    path, item->string);
            return 2;
        }
    return 0;
}

/* Reads the JSON config file into s. Returns 0, or 2 after a message. */
static int load_config(settings *s, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "kvd: cannot open config %s: %s\n", path, strerror(errno));
        return 2;
    }
    char buf[65536];
    size_t n = fread(buf, 1, sizeof buf, f);
    int too_big = !feof(f);
    fclose(f);
    if (too_big) {
        fprintf(stderr, "kvd: config %s is over 64 KiB\n", path);
        return 2;
    }
    cJSON *root = cJSON_ParseWithLength(buf, n);
    if (!cJSON_IsObject(root)) {
        fprintf(stderr, "kvd: config %s is not a JSON object\n", path);
        cJSON_Delete(root);
        return 2;
    }
    int rc = 0;
    for (cJSON *item = root->child; item && rc == 0; item = item->next) {
        const char *k = item->string;
        const char *str = cJSON_IsString(item) ? item->valuestring : NULL;
        int is_num = cJSON_IsNumber(item) && item->valuedouble >= 0 &&
                     item->valuedouble <= (double)UINT32_MAX &&
                     item->valuedouble == (double)(uint64_t)item->valuedouble;
        if (strcmp(k, "data") == 0 && str)
            set_string(&s->data, str);
        else if (strcmp(k, "listen") == 0 && str)
            set_string(&s->listen, str);
        else if (strcmp(k, "http") == 0 && str)
            set_string(&s->http, str);
        else if (strcmp(k, "nodeId") == 0 && str)
            set_string(&s->node_id, str);
        else if (strcmp(k, "peers") == 0 && cJSON_IsArray(item))
            rc = load_list(&s->peers, &s->n_peers, item, path);
        else if (strcmp(k, "seeds") == 0 && cJSON_IsArray(item))
            rc = load_list(&s->seeds, &s->n_seeds, item, path);
        else if (strcmp(k, "metadata") == 0 && str && strncmp(str, "etcd://", 7) == 0)
            set_string(&s->metadata, str);
        else if (strcmp(k, "metadata") == 0 && cJSON_IsNull(item))
            ; /* the default: the members keep the topology */
        else if (strcmp(k, "hintWindowS") == 0 && is_num && item->valuedouble >= 1)
            s->hint_window_s = (unsigned)item->valuedouble;
        else if (strcmp(k, "handoffKibPerS") == 0 && is_num && item->valuedouble >= 1)
            s->handoff_kib_per_s = (unsigned)item->valuedouble;
        else if (strcmp(k, "aeIntervalS") == 0 && is_num && item->valuedouble >= 0 &&
                 item->valuedouble <= 604800)
            s->ae_interval_s = item->valuedouble == 0 ? UINT32_MAX
                                                      : (unsigned)item->valuedouble;
        else if (strcmp(k, "digestBits") == 0 && is_num && item->valuedouble >= 4 &&
                 item->valuedouble <= 24)
            s->digest_bits = (unsigned)item->valuedouble;
        else if (strcmp(k, "repairRate") == 0 && is_num && item->valuedouble >= 1024 &&
                 item->valuedouble <= (double)(UINT64_C(1) << 40))
            s->repair_bytes_per_s = (uint64_t)item->valuedouble;
        else if (strcmp(k, "streamRate") == 0 && is_num && item->valuedouble >= 1024 &&
                 item->valuedouble <= (double)(UINT64_C(1) << 40))
            s->stream_bytes_per_s = (uint64_t)item->valuedouble;
        else if (strcmp(k, "failurePauseMs") == 0 && is_num && item->valuedouble >= 1 &&
                 item->valuedouble <= 600000)
            s->failure_pause_ms = (unsigned)item->valuedouble;
        else if (strcmp(k, "replicas") == 0 && is_num && item->valuedouble >= 1 &&
                   item->valuedouble <= 16)
            s->replicas = (unsigned)item->valuedouble;
        else if (strcmp(k, "vnodes") == 0 && is_num && item->valuedouble >= 1 &&
                 item->valuedouble <= 4096)
            s->vnodes = (unsigned)item->valuedouble;
        else if (strcmp(k, "policy") == 0 && str && parse_policy(str, &s->siblings) == 0)
            ;
        else if (strcmp(k, "internodeTimeoutMs") == 0 && is_num && item->valuedouble >= 1 &&
                 item->valuedouble <= 600000)
            s->internode_timeout_ms = (unsigned)item->valuedouble;
        else if (strcmp(k, "sync") == 0 && str && parse_sync(str, &s->sync) == 0)
            ;
        else if (strcmp(k, "logLevel") == 0 && str && parse_level(str, &s->log_level) == 0)
            ;
        else if (strcmp(k, "tombstoneGraceS") == 0 && is_num && item->valuedouble >= 0 &&
                 item->valuedouble <= 315360000)
            s->grace_s = item->valuedouble == 0 ? KV_GRACE_NONE : (uint64_t)item->valuedouble;
        else if (strcmp(k, "rowCacheBytes") == 0 && is_num &&
                 item->valuedouble <= (double)(UINT64_C(1) << 40))
            s->row_cache = (uint64_t)item->valuedouble;
        else if (strcmp(k, "ioThreads") == 0 && is_num)
            s->io_threads = (unsigned)item->valuedouble;
        else if (strcmp(k, "slowRequestMs") == 0 && is_num && item->valuedouble >= 1 &&
                 item->valuedouble <= 3600000)
            s->slow_request_ms = (unsigned)item->valuedouble;
        else if (strcmp(k, "httpThreads") == 0 && is_num)
            s->http_threads = (unsigned)item->valuedouble;
        else if (strcmp(k, "clusterSecretFile") == 0 && str)
            set_string(&s->secret_file, str);
        else if (strcmp(k, "clientTokenFile") == 0 && str)
            set_string(&s->token_file, str);
        else if (strcmp(k, "tlsCert") == 0 && str)
            set_string(&s->tls_cert, str);
        else if (strcmp(k, "tlsKey") == 0 && str)
            set_string(&s->tls_key, str);
        else if (strcmp(k, "tlsCa") == 0 && str)
            set_string(&s->tls_ca, str);
        else if (strcmp(k, "insecure") == 0 && cJSON_IsBool(item))
            s->insecure = cJSON_IsTrue(item);
        else if (strcmp(k, "maxKeySize") == 0 && is_num)
            s->max_key_size = (uint32_t)item->valuedouble;
        else if (strcmp(k, "maxValueSize") == 0 && is_num)
            s->max_value_size = (uint32_t)item->valuedouble;
        else if (strcmp(k, "maxBufferedBytes") == 0 && cJSON_IsNumber(item) &&
                 item->valuedouble >= (double)(1u << 20) &&
                 item->valuedouble <= (double)(UINT64_C(64) << 30) &&
                 item->valuedouble == (double)(uint64_t)item->valuedouble)
            s->max_buffered = (uint64_t)item->valuedouble;
        else {
            fprintf(stderr, "kvd: config %s: unknown key or wrong type: \"%s\"\n", path, k);
            rc = 2;
        }
    }
    cJSON_Delete(root);
    return rc;
}

static int parse_args(settings *s, int argc, char **argv)
{
    /* The config file first, so flags override it wherever they stand. */
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= argc)
                return bad("%s needs a value", argv[i]);
            int rc = load_config(s, argv[i + 1]);
            if (rc)
                return rc;
        }
    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i];
        if (strcmp(flag, "--help") == 0 || strcmp(flag, "-h") == 0) {
            usage(stdout);
            return -1;
        }
        if (strcmp(flag, "--version") == 0) {
            printf("kvd %s\n", kv_version(NULL, NULL, NULL));
            return -1;
        }
        if (strncmp(flag, "--", 2) != 0)
            return bad("unexpected argument \"%s\"", flag);
        if (strcmp(flag, "--insecure") == 0) {
            s->insecure = 1;
            continue;
        }
        if (i + 1 >= argc)
            return bad("%s needs a value", flag);
        const char *v = argv[++i];
        unsigned long n;
        if (strcmp(flag, "--config") == 0)
            continue;
        else if (strcmp(flag, "--data") == 0)
            set_string(&s->data, v);
        else if (strcmp(flag, "--listen") == 0)
            set_string(&s->listen, v);
        else if (strcmp(flag, "--http") == 0)
            set_string(&s->http, v);
        else if (strcmp(flag, "--node-id") == 0)
            set_string(&s->node_id, v);
        else if (strcmp(flag, "--peers") == 0) {
            if (set_list(&s->peers, &s->n_peers, v) != 0)
                return bad("--peers must be HOST:PORT[,HOST:PORT...], not \"%s\"", v);
        } else if (strcmp(flag, "--seeds") == 0) {
            if (set_list(&s->seeds, &s->n_seeds, v) != 0)
                return bad("--seeds must be HOST:PORT[,HOST:PORT...], not \"%s\"", v);
        } else if (strcmp(flag, "--hint-window") == 0) {
            if (parse_uint(v, UINT32_MAX, &n) != 0 || n == 0)
                return bad("--hint-window must be 1..4294967295 seconds, not \"%s\"", v);
            s->hint_window_s = (unsigned)n;
        } else if (strcmp(flag, "--handoff-rate") == 0) {
            if (parse_uint(v, UINT32_MAX, &n) != 0 || n == 0)
                return bad("--handoff-rate must be 1..4294967295 KiB/s, not \"%s\"", v);
            s->handoff_kib_per_s = (unsigned)n;
        } else if (strcmp(flag, "--ae-interval") == 0) {
            if (parse_uint(v, 604800, &n) != 0)
                return bad("--ae-interval must be 0..604800 seconds (0: none), not \"%s\"", v);
            s->ae_interval_s = n == 0 ? UINT32_MAX : (unsigned)n;
        } else if (strcmp(flag, "--digest-bits") == 0) {
            if (parse_uint(v, 24, &n) != 0 || n < 4)
                return bad("--digest-bits must be 4..24, not \"%s\"", v);
            s->digest_bits = (unsigned)n;
        } else if (strcmp(flag, "--repair-rate") == 0) {
            if (parse_uint(v, 1ul << 40, &n) != 0 || n < 1024)
                return bad("--repair-rate must be 1024..1099511627776 bytes/s, not \"%s\"", v);
            s->repair_bytes_per_s = n;
        } else if (strcmp(flag, "--stream-rate") == 0) {
            if (parse_uint(v, 1ul << 40, &n) != 0 || n < 1024)
                return bad("--stream-rate must be 1024..1099511627776 bytes/s, not \"%s\"", v);
            s->stream_bytes_per_s = n;
        } else if (strcmp(flag, "--failure-pause") == 0) {
            if (parse_uint(v, 600000, &n) != 0 || n == 0)
                return bad("--failure-pause must be 1..600000 ms, not \"%s\"", v);
            s->failure_pause_ms = (unsigned)n;
        } else if (strcmp(flag, "--replicas") == 0) {
            if (parse_uint(v, 16, &n) != 0 || n == 0)
                return bad("--replicas must be 1..16, not \"%s\"", v);
            s->replicas = (unsigned)n;
        } else if (strcmp(flag, "--vnodes") == 0) {
            if (parse_uint(v, 4096, &n) != 0 || n == 0)
                return bad("--vnodes must be 1..4096, not \"%s\"", v);
            s->vnodes = (unsigned)n;
        }
        else if (strcmp(flag, "--policy") == 0) {
            if (parse_policy(v, &s->siblings) != 0)
                return bad("--policy must be lww or siblings, not \"%s\"", v);
        } else if (strcmp(flag, "--internode-timeout") == 0) {
            if (parse_uint(v, 600000, &n) != 0 || n == 0)
                return bad("--internode-timeout must be 1..600000 ms, not \"%s\"", v);
            s->internode_timeout_ms = (unsigned)n;
        } else if (strcmp(flag, "--sync") == 0) {
            if (parse_sync(v, &s->sync) != 0)
                return bad("--sync must be always, periodic or none, not \"%s\"", v);
        } else if (strcmp(flag, "--log-level") == 0) {
            if (parse_level(v, &s->log_level) != 0)
                return bad("--log-level must be error, warn, info or debug, not \"%s\"", v);
        } else if (strcmp(flag, "--slow-request") == 0) {
            if (parse_uint(v, 3600000, &n) != 0 || n == 0)
                return bad("--slow-request must be 1..3600000 ms, not \"%s\"", v);
            s->slow_request_ms = (unsigned)n;
        } else if (strcmp(flag, "--tombstone-grace") == 0) {
            if (parse_uint(v, 315360000, &n) != 0)
                return bad("--tombstone-grace must be 0..315360000 seconds, not \"%s\"", v);
            s->grace_s = n == 0 ? KV_GRACE_NONE : n;
        } else if (strcmp(flag, "--row-cache-bytes") == 0) {
            if (parse_uint(v, 1ul << 40, &n) != 0)
                return bad("--row-cache-bytes must be 0..1099511627776, not \"%s\"", v);
            s->row_cache = n;
        } else if (strcmp(flag, "--io-threads") == 0) {
            if (parse_uint(v, 64, &n) != 0 || n == 0)
                return bad("--io-threads must be 1..64, not \"%s\"", v);
            s->io_threads = (unsigned)n;
        } else if (strcmp(flag, "--http-threads") == 0) {
            if (parse_uint(v, 64, &n) != 0 || n < 2)
                return bad("--http-threads must be 2..64, not \"%s\"", v);
            s->http_threads = (unsigned)n;
        } else if (strcmp(flag, "--restore-from") == 0) {
            if (!*v)
                return bad("--restore-from needs a directory, not \"%s\"", v);
            set_string(&s->restore_from, v);
        } else if (strcmp(flag, "--replace") == 0) {
            set_string(&s->replace_id, v);
        } else if (strcmp(flag, "--metadata") == 0) {
            if (strncmp(v, "etcd://", 7) != 0)
                return bad("--metadata takes etcd://HOST:PORT[,HOST:PORT...]/PREFIX, not \"%s\"",
                           v);
            set_string(&s->metadata, v);
        } else if (strcmp(flag, "--cluster-secret-file") == 0) {
            set_string(&s->secret_file, v);
        } else if (strcmp(flag, "--client-token-file") == 0) {
            set_string(&s->token_file, v);
        } else if (strcmp(flag, "--tls-cert") == 0) {
            set_string(&s->tls_cert, v);
        } else if (strcmp(flag, "--tls-key") == 0) {
            set_string(&s->tls_key, v);
        } else if (strcmp(flag, "--tls-ca") == 0) {
            set_string(&s->tls_ca, v);
        } else if (strcmp(flag, "--max-key-size") == 0) {
            if (parse_uint(v, KV_MAX_KEY_SIZE_LIMIT, &n) != 0 || n == 0)
                return bad("--max-key-size must be 1..65536, not \"%s\"", v);
            s->max_key_size = (uint32_t)n;
        } else if (strcmp(flag, "--max-buffered-bytes") == 0) {
            if (parse_uint(v, (unsigned long)64u << 30, &n) != 0 || n < (1u << 20))
                return bad("--max-buffered-bytes must be 1048576..68719476736, not \"%s\"", v);
            s->max_buffered = n;
        } else if (strcmp(flag, "--max-value-size") == 0) {
            if (parse_uint(v, KV_MAX_VALUE_SIZE_LIMIT, &n) != 0)
                return bad("--max-value-size must be 0..67108864, not \"%s\"", v);
            s->max_value_size = (uint32_t)n;
        } else {
            return bad("unknown flag \"%s\"", flag);
        }
    }
    if (!s->data)
        return bad("%s is required", "--data");
    if (!s->listen)
        return bad("%s is required", "--listen");
    if (s->replace_id && s->node_id && strcmp(s->replace_id, s->node_id) != 0)
        return bad("%s takes the replaced member's id; leave out --node-id or give the same",
                   "--replace");
    if (s->replace_id && !s->node_id)
        set_string(&s->node_id, s->replace_id);
    if (s->replace_id && !s->n_peers && !s->n_seeds)
        return bad("%s needs --seeds (or --peers): the cluster's topology is fetched from them",
                   "--replace");
    if (!s->node_id)
        return bad("%s is required", "--node-id");
    if (!s->tls_cert != !s->tls_key)
        return bad("%s: give --tls-cert and --tls-key together", s->tls_cert ? "--tls-cert" : "--tls-key");
    if (s->tls_ca && !s->tls_cert)
        return bad("%s needs --tls-cert and --tls-key", "--tls-ca");
    return 0;
}

/* A node started without --peers or --seeds on a store that remembers other
 * members is still their member (the library logs why): say it in plain
 * words on stderr too, where whoever started kvd by hand looks. */
static void warn_if_remembered(kv *db, const settings *s)
{
    if (s->n_peers || s->n_seeds)
        return;
    char *json = NULL;
    if (kv_cluster_describe(&json, db) != KV_OK)
        return;
    cJSON *root = cJSON_Parse(json);
    kv_string_free(json);
    const cJSON *members = cJSON_GetObjectItemCaseSensitive(root, "members");
    int n = cJSON_GetArraySize(members);
    if (n > 1) {
        fprintf(stderr, "kvd: warning: started without --peers or --seeds, but %s remembers "
                        "%d other member(s) of its cluster:", s->data, n - 1);
        const cJSON *m;
        int i = 0;
        cJSON_ArrayForEach(m, members) {
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(m, "nodeId");
            const cJSON *addr = cJSON_GetObjectItemCaseSensitive(m, "address");
            if (i++ > 0)
                fprintf(stderr, "%s %s (%s)", i > 2 ? "," : "",
                        cJSON_IsString(id) ? id->valuestring : "?",
                        cJSON_IsString(addr) ? addr->valuestring : "?");
        }
        fprintf(stderr, ".\nkvd: this node still needs them for quorum; to run a node of its "
                        "own, start kvd with a new, empty --data directory.\n");
    }
    cJSON_Delete(root);
}

/* ----------------------------------------------------------------- main */

static void free_settings(settings *s)
{
    free(s->data);
    free(s->listen);
    free(s->http);
    free(s->node_id);
    free(s->secret_file);
    free(s->token_file);
    free(s->tls_cert);
    free(s->tls_key);
    free(s->tls_ca);
    free(s->restore_from);
    free(s->replace_id);
    free(s->metadata);
    clear_list(&s->peers, &s->n_peers);
    clear_list(&s->seeds, &s->n_seeds);
}

/* glibc grows a heap by what an allocation needs plus M_TOP_PAD (128 KiB
 * by default), and gives the top back to the kernel once a free leaves
 * more than that unused. A node's allocations come and go in bursts
 * (request frames, answers, merge buffers, RocksDB's), so under load it
 * grew and trimmed its heaps all the time, faulting the same pages in
 * again and again. Measured on 3 nodes, QUORUM writes, sync none: 77 us
 * of server CPU per write with the default, 40-55 us with 32 MiB (and
 * worse than the default at 4 or 8 MiB: the bursts are larger than that);
 * docs/BENCHMARKS.md. Fixing the trim threshold instead also pins the
 * mmap threshold at 128 KiB, which was worse still. A daemon may set this
 * for its own process; the library leaves the allocator's settings to the
 * application. */
static void tune_malloc(void)
{
    mallopt(M_TOP_PAD, 32 << 20);
}

/* A node holds a socket per client and peer connection (HTTP allows 4096
 * at once) besides RocksDB's files; many systems start a service with a
 * soft limit of 1024 open files. Raise the soft limit to the hard one, as
 * Redis and nginx do, and say what the node got. A daemon may set this for
 * its own process; the library leaves the process's limits to the
 * application. */
static void raise_open_files_limit(void)
{
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) != 0)
        return;
    rlim_t wanted = lim.rlim_max;
    if (wanted == RLIM_INFINITY || wanted > (1u << 20))
        wanted = 1u << 20;
    if (lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur < wanted) {
        struct rlimit raised = {.rlim_cur = wanted, .rlim_max = lim.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
            lim.rlim_cur = wanted;
    }
    if (lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur < 8192)
        logf_(KV_LOG_WARN,
              "open files limited to %llu (hard limit %llu): a node with many client "
              "connections may refuse some; raise it with ulimit -n or LimitNOFILE=",
              (unsigned long long)lim.rlim_cur, (unsigned long long)lim.rlim_max);
}

int main(int argc, char **argv)
{
    settings s = {.sync = KV_SYNC_ALWAYS, .log_level = KV_LOG_INFO, .row_cache = 64u << 20};
    int rc = parse_args(&s, argc, argv);
    if (rc) {
        free_settings(&s);
        return rc < 0 ? 0 : rc; /* -1: --help was answered */
    }
    g_log_level = s.log_level;
    tune_malloc();
    raise_open_files_limit();

    /* Block the stop signals before any thread starts, so every thread
     * inherits the mask and only sigwait below receives them. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    kv_open_options store = KV_OPEN_OPTIONS_INIT;
    store.sync = s.sync;
    store.max_key_size = s.max_key_size;
    store.max_value_size = s.max_value_size;
    store.log_fn = log_line;
    store.log_level = s.log_level;
    store.row_cache_bytes = s.row_cache ? s.row_cache : KV_ROW_CACHE_NONE;
    store.tombstone_grace_s = s.grace_s;
    kv_node_options node = KV_NODE_OPTIONS_INIT;
    node.data_dir = s.data;
    node.node_id = s.node_id;
    node.listen_addr = s.listen;
    node.http_addr = s.http;
    node.store = &store;
    node.io_threads = s.io_threads;
    node.slow_request_ms = s.slow_request_ms;
    node.http_threads = s.http_threads;
    node.peers = (const char *const *)s.peers;
    node.peer_count = s.n_peers;
    node.replicas = s.replicas;
    node.vnodes = s.vnodes;
    node.policy = s.siblings ? KV_POLICY_SIBLINGS : KV_POLICY_LWW;
    node.internode_timeout_ms = s.internode_timeout_ms;
    node.seeds = (const char *const *)s.seeds;
    node.seed_count = s.n_seeds;
    node.hint_window_s = s.hint_window_s;
    node.handoff_kib_per_s = s.handoff_kib_per_s;
    node.ae_interval_s = s.ae_interval_s;
    node.repair_bytes_per_s = s.repair_bytes_per_s;
    node.stream_bytes_per_s = s.stream_bytes_per_s;
    node.replace = s.replace_id != NULL;
    node.metadata = s.metadata;
    node.ae_digest_bits = s.digest_bits;
    node.failure_pause_ms = s.failure_pause_ms;

    node.insecure = s.insecure;
    node.max_buffered_bytes = s.max_buffered;
    unsigned char *secret = NULL;
    size_t secret_len = 0;
    char **tokens = NULL;
    size_t n_tokens = 0;
    char err[512];
    int warning = 0;
    if (s.secret_file) {
        if (kvt_read_secret_file(s.secret_file, &secret, &secret_len, &warning, err,
                                 sizeof err) != 0) {
            fprintf(stderr, "kvd: --cluster-secret-file: %s\n", err);
            free_settings(&s);
            return 2;
        }
        if (warning)
            logf_(KV_LOG_WARN, "%s is readable by other users (chmod 600 it)", s.secret_file);
        node.cluster_secret = secret;
        node.cluster_secret_len = secret_len;
    }
    if (s.token_file) {
        if (kvt_read_token_file(s.token_file, &tokens, &n_tokens, &warning, err,
                                sizeof err) != 0) {
            fprintf(stderr, "kvd: --client-token-file: %s\n", err);
            free(secret);
            free_settings(&s);
            return 2;
        }
        if (warning)
            logf_(KV_LOG_WARN, "%s is readable by other users (chmod 600 it)", s.token_file);
        node.client_tokens = (const char *const *)tokens;
        node.client_token_count = n_tokens;
    }
    char *pem[3] = {NULL, NULL, NULL};
    const char *pem_files[3] = {s.tls_cert, s.tls_key, s.tls_ca};
    const char *pem_flags[3] = {"--tls-cert", "--tls-key", "--tls-ca"};
    for (int i = 0; i < 3; i++) {
        if (!pem_files[i])
            continue;
        unsigned char *text = NULL;
        size_t len = 0;
        if (kvt_read_secret_file(pem_files[i], &text, &len, &warning, err, sizeof err) != 0) {
            fprintf(stderr, "kvd: %s: %s\n", pem_flags[i], err);
            for (int k = 0; k < 3; k++)
                free(pem[k]);
            free(secret);
            kvt_free_tokens(tokens, n_tokens);
            free_settings(&s);
            return 2;
        }
        text[len] = 0; /* the reader leaves room for it */
        pem[i] = (char *)text;
        if (i == 1 && warning)
            logf_(KV_LOG_WARN, "%s is readable by other users (chmod 600 it)", s.tls_key);
    }
    node.tls_cert_pem = pem[0];
    node.tls_key_pem = pem[1];
    node.tls_ca_pem = pem[2];
    if (s.insecure && !secret && !tokens)
        logf_(KV_LOG_WARN, "--insecure: no cluster secret and no client tokens: anyone who "
                           "reaches this node can read, write and change the cluster");

    kv *db = NULL;
    rc = KV_OK;
    if (s.restore_from) {
        /* Before the node opens the store: the copy must be whole first. */
        rc = kv_restore(s.restore_from, s.data, s.node_id);
        if (rc == KV_OK)
            logf_(KV_LOG_INFO, "restored node %s from the backup in %s into %s", s.node_id,
                  s.restore_from, s.data);
    }
    if (rc == KV_OK)
        rc = kv_node_start(&db, &node);
    /* The node keeps copies. */
    if (secret)
        memset(secret, 0, secret_len);
    free(secret);
    kvt_free_tokens(tokens, n_tokens);
    if (pem[1])
        memset(pem[1], 0, strlen(pem[1]));
    for (int k = 0; k < 3; k++)
        free(pem[k]);
    if (rc != KV_OK) {
        const char *what = s.restore_from ? "restore or start" : "start";
        logf_(KV_LOG_ERROR, "cannot %s node %s: %s: %s", what, s.node_id, kv_strerror(rc),
              kv_error_last());
        fprintf(stderr, "kvd: cannot %s: %s: %s\n", what, kv_strerror(rc), kv_error_last());
        free_settings(&s);
        return 1;
    }
    int binary_port = 0, http_port = 0;
    kv_node_ports(&binary_port, &http_port, db);
    warn_if_remembered(db, &s);
    logf_(KV_LOG_INFO, "ready: node %s, binary port %d, http port %d, data %s", s.node_id,
          binary_port, http_port, s.data);

    int sig = 0;
    while (sigwait(&stop, &sig) != 0)
        ;
    logf_(KV_LOG_INFO, "received %s: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    kv_close(db);
    logf_(KV_LOG_INFO, "stopped");
    free_settings(&s);
    return 0;
}
