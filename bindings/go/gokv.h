/* gokv.h - the C side of the Go binding (see capi.go). */
#ifndef GOKV_H
#define GOKV_H
#include <kv/kv.h>

typedef struct {
	int rc;
	uint64_t version;
	char *detail;      // malloc'ed copy of kv_error_last() on failure, or NULL
	kv_value *value;   // kv_get's value, released with kv_value_free (not for batch results)
	const void *data;
	size_t len;
	uint64_t expiry_ms;
	size_t siblings;
	const void *ctx;
	size_t ctx_len;
	char *trace;       // kv_get_traced's JSON (or another call's), freed with free()
} gokv_res;

typedef struct {
	int rc;
	kv *db;
	char *detail;
} gokv_open_res;

gokv_res gokv_get(kv *db, const void *k, size_t kl, int use_opts, int cons, unsigned r, int traced);
gokv_res gokv_put(kv *db, const void *k, size_t kl, const void *v, size_t vl, int use_opts, uint64_t ttl, int cons, unsigned w, const void *ctx, size_t ctx_len, int home_only);
gokv_res gokv_delete(kv *db, const void *k, size_t kl, int use_opts, int cons, unsigned w, const void *ctx, size_t ctx_len, int home_only);
gokv_res gokv_cas(kv *db, const void *k, size_t kl, uint64_t expected, const void *v, size_t vl, int use_opts, uint64_t ttl, int cons, unsigned w, const void *ctx, size_t ctx_len, int home_only);
gokv_res gokv_batch_add(kv_batch *b, int op, const void *k, size_t kl, const void *v, size_t vl, uint64_t ttl);
gokv_res gokv_batch_execute(kv *db, kv_batch *b, int use_w, int wcons, unsigned w, int use_r, int rcons, unsigned r);
gokv_res gokv_batch_result(const kv_batch *b, size_t i);
gokv_res gokv_simple(kv *db, int which);
gokv_res gokv_ports(const kv *db);
gokv_res gokv_admin(kv *db, int which, const char *a, const char *b);
gokv_open_res gokv_open(const char *path, const kv_open_options *o);
gokv_open_res gokv_node_start(const kv_node_options *o);
gokv_open_res gokv_client_open(const char *const *eps, size_t n, const kv_client_options *o);
int gokv_noop(int x);

#endif
