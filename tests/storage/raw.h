/* storage/raw.h - reach under libkv into its RocksDB directory, as a test
 * must to see what compaction kept or to damage a record on purpose. Only
 * for a store that no kv handle has open. */
#ifndef KV_TEST_RAW_H
#define KV_TEST_RAW_H

#include <rocksdb/c.h>
#include <stdlib.h>
#include <string.h>

#include "format/record.h"
#include "storage/store.h"

typedef struct raw_db {
    rocksdb_t *db;
    rocksdb_options_t *options;
    rocksdb_column_family_handle_t *cf[4]; /* meta, data, hints, paxos */
} raw_db;

static inline int raw_open(raw_db *r, const char *path)
{
    /* RocksDB opens a database only with every one of its families. */
    const char *names[4] = {KVI_CF_META, KVI_CF_DATA, KVI_CF_HINTS, KVI_CF_PAXOS};
    r->options = rocksdb_options_create();
    const rocksdb_options_t *cf_options[4] = {r->options, r->options, r->options, r->options};
    char *err = NULL;
    r->db = rocksdb_open_column_families(r->options, path, 4, names, cf_options, r->cf, &err);
    if (err) {
        free(err);
        return -1;
    }
    return 0;
}

static inline void raw_close(raw_db *r)
{
    rocksdb_column_family_handle_destroy(r->cf[0]);
    rocksdb_column_family_handle_destroy(r->cf[1]);
    rocksdb_column_family_handle_destroy(r->cf[2]);
    rocksdb_column_family_handle_destroy(r->cf[3]);
    rocksdb_close(r->db);
    rocksdb_options_destroy(r->options);
}

/* The raw record stored for a user key (malloc'd; NULL when absent). */
static inline char *raw_get(raw_db *r, const char *key, size_t key_len, size_t *len)
{
    unsigned char skey[KVI_TOKEN_SIZE + 64];
    kvi_storage_key(skey, kvi_key_token(key, key_len), key, key_len);
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    char *err = NULL;
    char *v = rocksdb_get_cf(r->db, ro, r->cf[1], (const char *)skey,
                             KVI_TOKEN_SIZE + key_len, len, &err);
    rocksdb_readoptions_destroy(ro);
    free(err);
    return v;
}

static inline int raw_put(raw_db *r, const char *key, size_t key_len,
                          const char *value, size_t len)
{
    unsigned char skey[KVI_TOKEN_SIZE + 64];
    kvi_storage_key(skey, kvi_key_token(key, key_len), key, key_len);
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    char *err = NULL;
    rocksdb_put_cf(r->db, wo, r->cf[1], (const char *)skey, KVI_TOKEN_SIZE + key_len,
                   value, len, &err);
    rocksdb_writeoptions_destroy(wo);
    int rc = err ? -1 : 0;
    free(err);
    return rc;
}

/* Number of records in the data family, tombstones included. */
static inline size_t raw_count(raw_db *r)
{
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(r->db, ro, r->cf[1]);
    size_t n = 0;
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it))
        n++;
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    return n;
}

/* True when the value bytes appear anywhere in the directory's files: the
 * proof that compaction physically removed them (or did not). */
static inline int raw_files_contain(const char *dir, const char *needle)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "grep -rqa -- '%s' '%s'", needle, dir);
    return system(cmd) == 0;
}

#endif
