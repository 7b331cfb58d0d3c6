/* api/fixture.h - a fresh embedded store per test. */
#ifndef KV_TEST_API_FIXTURE_H
#define KV_TEST_API_FIXTURE_H

#include <kv/kv.h>
#include "helpers.h"

typedef struct fixture {
    char *dir;
    kv *db;
} fixture;

static inline int fixture_open_with(void **state, const kv_open_options *opts)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    f->dir = test_tempdir();
    if (!f->dir || kv_open(&f->db, f->dir, opts) != KV_OK) {
        fprintf(stderr, "kv_open failed: %s\n", kv_error_last());
        return -1;
    }
    *state = f;
    return 0;
}

static inline int fixture_open(void **state)
{
    return fixture_open_with(state, NULL);
}

static inline int fixture_close(void **state)
{
    fixture *f = *state;
    kv_close(f->db);
    test_rmtree(f->dir);
    free(f);
    return 0;
}

#define DB(state) (((fixture *)*(state))->db)

#endif
