/* storage/backup.c - kv_backup's snapshots and kv_restore's copies (see backup.h). */
#include "storage/backup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "storage/embedded.h"
#include "storage/store.h"
#include "util/error.h"
#include "util/validate.h"

/* A manifest is a few hundred bytes; anything far larger is not ours. */
#define MAX_MANIFEST (64u * 1024u)
/* dir + "/" + a file name RocksDB writes (or ours). */
#define MAX_FILE_PATH (KV_BACKUP_MAX_PATH + 256u)

const char *kvi_backup_status_name(int rc)
{
    switch (rc) {
    case KV_OK: return "OK";
    case KV_EINVAL: return "BAD_REQUEST";
    case KV_EPERM: return "UNAUTHORIZED";
    case KV_ETIMEDOUT: return "TIMEOUT";
    case KV_EUNKNOWN_OUTCOME: return "UNKNOWN_OUTCOME";
    case KV_EUNAVAILABLE: return "UNAVAILABLE";
    case KV_ENOTSUP: return "NOT_SUPPORTED";
    case KV_EBUSY: return "BUSY";
    case KV_ENOMEM: return "OUT_OF_MEMORY";
    default: return "IO_ERROR";
    }
}

void kvi_backup_entry_failed(cJSON *entry, int rc, const char *message)
{
    cJSON_AddStringToObject(entry, "status", kvi_backup_status_name(rc));
    cJSON_AddStringToObject(entry, "message", message);
}

/* ---------------------------------------------------------------- files */

/* mkdir -p of dir's parents (not dir itself), mode 0700: a backup holds
 * every value of the store. dir has no trailing '/'. */
static int make_parents(const char *dir)
{
    char path[MAX_FILE_PATH];
    size_t len = strlen(dir);
    if (len >= sizeof path)
        return kvi_error(KV_EINVAL, "the path %s is too long", dir);
    memcpy(path, dir, len + 1);
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            return kvi_error(KV_EIO, "cannot create %s: %s", path, strerror(errno));
        *p = '/';
    }
    return KV_OK;
}

static int fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return kvi_error(KV_EIO, "cannot open %s: %s", path, strerror(errno));
    int rc = fsync(fd) == 0 ? KV_OK : kvi_error(KV_EIO, "cannot sync %s: %s", path,
                                                 strerror(errno));
    close(fd);
    return rc;
}

/* Writes len bytes to path (created, not replaced), synced. */
static int write_file(const char *path, const void *data, size_t len, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0)
        return kvi_error(KV_EIO, "cannot create %s: %s", path, strerror(errno));
    const char *p = data;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = errno;
            close(fd);
            return kvi_error(KV_EIO, "cannot write %s: %s", path, strerror(e));
        }
        p += n;
        len -= (size_t)n;
    }
    int rc = fsync(fd) == 0 ? KV_OK : kvi_error(KV_EIO, "cannot sync %s: %s", path,
                                                 strerror(errno));
    close(fd);
    return rc;
}

/* The bytes of the regular files in dir (a checkpoint is flat). */
static uint64_t dir_bytes(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    uint64_t total = 0;
    struct dirent *e;
    char path[MAX_FILE_PATH];
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (lstat(path, &st) == 0 && S_ISREG(st.st_mode))
            total += (uint64_t)st.st_size;
    }
    closedir(d);
    return total;
}

/* ------------------------------------------------------------- snapshot */

static int write_manifest(const char *dir, const char *node_id, uint64_t keys)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[40];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    cJSON *m = cJSON_CreateObject();
    if (!m)
        return kvi_error(KV_ENOMEM, "out of memory writing a backup manifest");
    cJSON_AddNumberToObject(m, "format", KVI_BACKUP_FORMAT);
    cJSON_AddStringToObject(m, "kind", "libkv store snapshot (RocksDB checkpoint)");
    if (node_id)
        cJSON_AddStringToObject(m, "nodeId", node_id);
    else
        cJSON_AddNullToObject(m, "nodeId");
    cJSON_AddStringToObject(m, "createdAt", when);
    cJSON_AddNumberToObject(m, "createdMs",
                            (double)ts.tv_sec * 1000.0 + (double)(ts.tv_nsec / 1000000));
    cJSON_AddStringToObject(m, "libkvVersion", KV_VERSION_STRING);
    cJSON_AddNumberToObject(m, "estimatedKeys", (double)keys);
    char *text = cJSON_Print(m);
    cJSON_Delete(m);
    if (!text)
        return kvi_error(KV_ENOMEM, "out of memory writing a backup manifest");
    char tmp[MAX_FILE_PATH], final[MAX_FILE_PATH];
    snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, KVI_BACKUP_MANIFEST);
    snprintf(final, sizeof final, "%s/%s", dir, KVI_BACKUP_MANIFEST);
    size_t len = strlen(text);
    text[len] = '\n'; /* over the NUL: the file ends in a newline */
    int rc = write_file(tmp, text, len + 1, 0600);
    free(text);
    if (rc == KV_OK && rename(tmp, final) != 0)
        rc = kvi_error(KV_EIO, "cannot rename %s: %s", tmp, strerror(errno));
    if (rc == KV_OK)
        rc = fsync_path(dir);
    return rc;
}

int kvi_backup_local(kvi_embedded *store, const char *dir, const char *node_id, cJSON *entry)
{
    if (node_id)
        cJSON_AddStringToObject(entry, "nodeId", node_id);
    else
        cJSON_AddNullToObject(entry, "nodeId");
    cJSON_AddStringToObject(entry, "path", dir);
    struct stat st;
    int rc = KV_OK;
    if (lstat(dir, &st) == 0)
        rc = kvi_error(KV_EINVAL, "%s already exists: a backup goes into a new directory", dir);
    if (rc == KV_OK)
        rc = make_parents(dir);
    kvi_store *s = kvi_embedded_store(store);
    if (rc == KV_OK)
        rc = kvi_store_checkpoint(s, dir);
    uint64_t keys = kvi_store_estimate_keys(s);
    if (rc == KV_OK)
        rc = write_manifest(dir, node_id, keys);
    if (rc != KV_OK) {
        kvi_backup_entry_failed(entry, rc, kvi_error_last());
        return rc;
    }
    cJSON_AddStringToObject(entry, "status", "OK");
    cJSON_AddNumberToObject(entry, "bytes", (double)dir_bytes(dir));
    cJSON_AddNumberToObject(entry, "estimatedKeys", (double)keys);
    return KV_OK;
}

/* ------------------------------------------------------------ report */

int kvi_backup_report(char **out_report, const char *given, kvi_backup_fill_fn fill,
                      void *ctx)
{
    /* Without trailing slashes: RocksDB names its work directory dir.tmp. */
    char dir[KV_BACKUP_MAX_PATH + 1];
    snprintf(dir, sizeof dir, "%s", given);
    for (size_t n = strlen(dir); n > 1 && dir[n - 1] == '/'; n--)
        dir[n - 1] = 0;
    cJSON *report = cJSON_CreateObject();
    cJSON *nodes = cJSON_CreateArray();
    if (!report || !nodes) {
        cJSON_Delete(report);
        cJSON_Delete(nodes);
        return kvi_error(KV_ENOMEM, "out of memory starting a backup");
    }
    cJSON_AddStringToObject(report, "dir", dir);
    cJSON_AddItemToObject(report, "nodes", nodes);
    int rc = fill(ctx, dir, nodes);
    if (out_report) {
        char saved[700];
        snprintf(saved, sizeof saved, "%s", kvi_error_last());
        *out_report = cJSON_PrintUnformatted(report);
        if (rc != KV_OK)
            kvi_error(rc, "%s", saved);
    }
    cJSON_Delete(report);
    return rc;
}

/* -------------------------------------------------------------- restore */

/* The manifest of the snapshot in dir: KV_OK with *root (free it), or
 * KV_ENOTFOUND when dir holds none. */
static int read_manifest(const char *dir, cJSON **root)
{
    *root = NULL;
    char path[MAX_FILE_PATH];
    snprintf(path, sizeof path, "%s/%s", dir, KVI_BACKUP_MANIFEST);
    FILE *f = fopen(path, "rb");
    if (!f)
        return errno == ENOENT || errno == ENOTDIR
                   ? KV_ENOTFOUND
                   : kvi_error(KV_EIO, "cannot open %s: %s", path, strerror(errno));
    char *buf = malloc(MAX_MANIFEST);
    size_t n = buf ? fread(buf, 1, MAX_MANIFEST, f) : 0;
    int too_big = buf && !feof(f);
    fclose(f);
    if (!buf)
        return kvi_error(KV_ENOMEM, "out of memory reading %s", path);
    *root = too_big ? NULL : cJSON_ParseWithLength(buf, n);
    free(buf);
    if (!cJSON_IsObject(*root)) {
        cJSON_Delete(*root);
        *root = NULL;
        return kvi_error(KV_EINVAL, "%s is not a libkv backup manifest", path);
    }
    return KV_OK;
}

/* Finds the snapshot: backup_dir itself, or backup_dir/<node_id>. */
static int find_snapshot(const char *backup_dir, const char *node_id, char *src, size_t cap,
                         cJSON **manifest)
{
    snprintf(src, cap, "%s", backup_dir);
    int rc = read_manifest(src, manifest);
    if (rc == KV_ENOTFOUND && node_id) {
        snprintf(src, cap, "%s/%s", backup_dir, node_id);
        rc = read_manifest(src, manifest);
    }
    if (rc == KV_ENOTFOUND && node_id)
        return kvi_error(KV_EINVAL, "no finished backup at %s: neither %s/%s nor %s/%s/%s "
                                    "exists", backup_dir, backup_dir, KVI_BACKUP_MANIFEST,
                         backup_dir, node_id, KVI_BACKUP_MANIFEST);
    if (rc == KV_ENOTFOUND)
        return kvi_error(KV_EINVAL, "no finished backup at %s: %s/%s does not exist",
                         backup_dir, backup_dir, KVI_BACKUP_MANIFEST);
    if (rc != KV_OK)
        return rc;
    const cJSON *format = cJSON_GetObjectItemCaseSensitive(*manifest, "format");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(*manifest, "nodeId");
    if (!cJSON_IsNumber(format) || format->valuedouble != KVI_BACKUP_FORMAT)
        rc = kvi_error(KV_EINVAL, "the backup at %s has an unknown format (this libkv reads "
                                  "format %d)", src, KVI_BACKUP_FORMAT);
    else if (node_id && cJSON_IsString(id) && strcmp(id->valuestring, node_id) != 0)
        rc = kvi_error(KV_EINVAL, "the backup at %s is of node %s, not of %s: a node's store "
                                  "holds that node's share of the ring", src, id->valuestring,
                       node_id);
    if (rc != KV_OK) {
        cJSON_Delete(*manifest);
        *manifest = NULL;
    }
    return rc;
}

static int copy_file(const char *from, const char *to, mode_t mode)
{
    int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return kvi_error(KV_EIO, "cannot open %s: %s", from, strerror(errno));
    int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (out < 0) {
        int e = errno;
        close(in);
        return kvi_error(KV_EIO, "cannot create %s: %s", to, strerror(e));
    }
    char buf[64 * 1024];
    int rc = KV_OK;
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = kvi_error(KV_EIO, "cannot read %s: %s", from, strerror(errno));
            break;
        }
        if (n == 0)
            break;
        for (ssize_t done = 0; done < n;) {
            ssize_t w = write(out, buf + done, (size_t)(n - done));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                rc = kvi_error(KV_EIO, "cannot write %s: %s", to, strerror(errno));
                break;
            }
            done += w;
        }
        if (rc != KV_OK)
            break;
    }
    if (rc == KV_OK && fsync(out) != 0)
        rc = kvi_error(KV_EIO, "cannot sync %s: %s", to, strerror(errno));
    close(in);
    close(out);
    return rc;
}

/* Whether dir exists (*exists) and holds nothing but "." and "..". */
static int empty_or_missing(const char *dir, int *exists)
{
    *exists = 0;
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT)
            return KV_OK;
        return kvi_error(errno == ENOTDIR ? KV_EINVAL : KV_EIO, "cannot read %s: %s", dir,
                         strerror(errno));
    }
    *exists = 1;
    struct dirent *e;
    int empty = 1;
    while (empty && (e = readdir(d)) != NULL)
        empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
    closedir(d);
    if (!empty)
        return kvi_error(KV_EINVAL, "%s is not empty: a restore goes into a missing or empty "
                                    "data directory, never over a store (move it aside first)",
                         dir);
    return KV_OK;
}

/* Copies every regular file of src but the manifest into dst, CURRENT
 * (RocksDB's pointer to the live manifest) last. */
static int copy_snapshot(const char *src, const char *dst)
{
    DIR *d = opendir(src);
    if (!d)
        return kvi_error(KV_EIO, "cannot read %s: %s", src, strerror(errno));
    int rc = KV_OK;
    int has_current = 0;
    char from[MAX_FILE_PATH], to[MAX_FILE_PATH];
    struct dirent *e;
    struct stat st;
    while (rc == KV_OK && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, KVI_BACKUP_MANIFEST) == 0)
            continue;
        if (strcmp(e->d_name, "CURRENT") == 0) {
            has_current = 1;
            continue;
        }
        snprintf(from, sizeof from, "%s/%s", src, e->d_name);
        if (lstat(from, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        snprintf(to, sizeof to, "%s/%s", dst, e->d_name);
        rc = copy_file(from, to, st.st_mode & 0777);
    }
    closedir(d);
    if (rc == KV_OK && !has_current)
        rc = kvi_error(KV_EINVAL, "%s holds no RocksDB CURRENT file: not a store snapshot", src);
    if (rc == KV_OK) {
        snprintf(from, sizeof from, "%s/CURRENT", src);
        snprintf(to, sizeof to, "%s/CURRENT", dst);
        rc = copy_file(from, to, 0644);
    }
    return rc;
}

/* Removes the files of dir (flat), leaving it empty, after a failed copy. */
static void empty_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char path[MAX_FILE_PATH];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
}

int kvi_backup_restore(const char *backup_dir, const char *data_dir, const char *node_id)
{
    if (!*backup_dir || strlen(backup_dir) > KV_BACKUP_MAX_PATH)
        return kvi_error(KV_EINVAL, "kv_restore: the backup directory must be 1..%u bytes",
                         (unsigned)KV_BACKUP_MAX_PATH);
    if (!*data_dir || strlen(data_dir) > KV_BACKUP_MAX_PATH)
        return kvi_error(KV_EINVAL, "kv_restore: the data directory must be 1..%u bytes",
                         (unsigned)KV_BACKUP_MAX_PATH);
    if (node_id && (!*node_id || strlen(node_id) > 64 || strchr(node_id, '/')))
        return kvi_error(KV_EINVAL, "kv_restore: the node id is not a valid node id");
    char src[MAX_FILE_PATH];
    cJSON *manifest = NULL;
    int rc = find_snapshot(backup_dir, node_id, src, sizeof src, &manifest);
    cJSON_Delete(manifest);
    int exists = 0;
    if (rc == KV_OK)
        rc = empty_or_missing(data_dir, &exists);
    if (rc == KV_OK && !exists) {
        rc = make_parents(data_dir);
        if (rc == KV_OK && mkdir(data_dir, 0700) != 0)
            rc = kvi_error(KV_EIO, "cannot create %s: %s", data_dir, strerror(errno));
    }
    if (rc != KV_OK)
        return rc;
    /* The marker goes first and leaves last: a crash in between leaves a
     * store that kv_open refuses, rather than one it would open with
     * files missing. */
    char marker[MAX_FILE_PATH];
    snprintf(marker, sizeof marker, "%s/%s", data_dir, KVI_RESTORE_MARKER);
    rc = write_file(marker, src, strlen(src), 0600);
    if (rc == KV_OK)
        rc = fsync_path(data_dir);
    if (rc == KV_OK)
        rc = copy_snapshot(src, data_dir);
    if (rc == KV_OK)
        rc = fsync_path(data_dir);
    if (rc == KV_OK && unlink(marker) != 0)
        rc = kvi_error(KV_EIO, "cannot remove %s: %s", marker, strerror(errno));
    if (rc == KV_OK)
        rc = fsync_path(data_dir);
    if (rc != KV_OK) {
        char saved[700];
        snprintf(saved, sizeof saved, "%s", kvi_error_last());
        empty_dir(data_dir);
        return kvi_error(rc, "restoring %s into %s: %s", src, data_dir, saved);
    }
    return KV_OK;
}
