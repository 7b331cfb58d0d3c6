/* gokv.c - the C side of the Go binding: one wrapper per libkv call (see capi.go). */
#include <stdlib.h>
#include <string.h>
#include "gokv.h"


static char *gokv_detail(int rc) {
	const char *d = kv_error_last();
	(void)rc;
	return (d && *d) ? strdup(d) : NULL;
}

static void gokv_fill(gokv_res *r) {
	r->data = kv_value_data(r->value, &r->len);
	r->version = kv_value_version(r->value);
	r->expiry_ms = kv_value_expiry_ms(r->value);
	r->siblings = kv_value_sibling_count(r->value);
	r->ctx = kv_value_context(r->value, &r->ctx_len);
}

static kv_write_options gokv_wopts(uint64_t ttl, int cons, unsigned w, const void *ctx,
                                   size_t ctx_len, int home_only) {
	kv_write_options o;
	kv_write_options_init(&o, KV_WRITE_OPTIONS_VERSION);
	o.ttl_s = ttl;
	o.consistency = (kv_consistency)cons;
	o.w = w;
	o.context = ctx;
	o.context_len = ctx_len;
	o.home_only = home_only;
	return o;
}

gokv_res gokv_get(kv *db, const void *k, size_t kl, int use_opts, int cons, unsigned r,
                         int traced) {
	gokv_res res;
	memset(&res, 0, sizeof res);
	kv_read_options o;
	kv_read_options_init(&o, KV_READ_OPTIONS_VERSION);
	o.consistency = (kv_consistency)cons;
	o.r = r;
	if (traced) {
		char *t = NULL;
		res.rc = kv_get_traced(&res.value, &t, db, k, kl, use_opts ? &o : NULL);
		if (t) {
			res.trace = strdup(t);
			kv_string_free(t);
		}
	} else {
		res.rc = kv_get(&res.value, db, k, kl, use_opts ? &o : NULL);
	}
	if (res.rc == KV_OK)
		gokv_fill(&res);
	else if (res.rc != KV_ENOTFOUND)
		res.detail = gokv_detail(res.rc);
	return res;
}

gokv_res gokv_put(kv *db, const void *k, size_t kl, const void *v, size_t vl,
                         int use_opts, uint64_t ttl, int cons, unsigned w, const void *ctx,
                         size_t ctx_len, int home_only) {
	gokv_res res;
	memset(&res, 0, sizeof res);
	kv_write_options o = gokv_wopts(ttl, cons, w, ctx, ctx_len, home_only);
	res.rc = kv_put(&res.version, db, k, kl, v, vl, use_opts ? &o : NULL);
	if (res.rc)
		res.detail = gokv_detail(res.rc);
	return res;
}

gokv_res gokv_delete(kv *db, const void *k, size_t kl, int use_opts, int cons,
                            unsigned w, const void *ctx, size_t ctx_len, int home_only) {
	gokv_res res;
	memset(&res, 0, sizeof res);
	kv_write_options o = gokv_wopts(0, cons, w, ctx, ctx_len, home_only);
	res.rc = kv_delete(&res.version, db, k, kl, use_opts ? &o : NULL);
	if (res.rc && res.rc != KV_ENOTFOUND)
		res.detail = gokv_detail(res.rc);
	return res;
}

gokv_res gokv_cas(kv *db, const void *k, size_t kl, uint64_t expected, const void *v,
                         size_t vl, int use_opts, uint64_t ttl, int cons, unsigned w,
                         const void *ctx, size_t ctx_len, int home_only) {
	gokv_res res;
	memset(&res, 0, sizeof res);
	kv_write_options o = gokv_wopts(ttl, cons, w, ctx, ctx_len, home_only);
	res.rc = kv_cas(&res.version, db, k, kl, expected, v, vl, use_opts ? &o : NULL);
	if (res.rc)
		res.detail = gokv_detail(res.rc);
	return res;
}

// A batch is built in C memory by gokv_batch_add (keys and values copied by
// libkv), run, and its results read one by one.
gokv_res gokv_batch_add(kv_batch *b, int op, const void *k, size_t kl, const void *v,
                               size_t vl, uint64_t ttl) {
	gokv_res res;
	memset(&res, 0, sizeof res);
	switch (op) {
	case KV_BATCH_PUT: res.rc = kv_batch_put(b, k, kl, v, vl, ttl); break;
	case KV_BATCH_GET: res.rc = kv_batch_get(b, k, kl); break;
	default: res.rc = kv_batch_delete(b, k, kl); break;
	}
	if (res.rc)
		res.detail = gokv_detail(res.rc);
	return res;
}

gokv_res gokv_batch_execute(kv *db, kv_batch *b, int use_w, int wcons, unsigned w,
                                   int use_r, int rcons, unsigned r) {
	gokv_res res;
	memset(&res, 0, sizeof res);
	kv_write_options wo = gokv_wopts(0, wcons, w, NULL, 0, 0);
	kv_read_options ro;
	kv_read_options_init(&ro, KV_READ_OPTIONS_VERSION);
	ro.consistency = (kv_consistency)rcons;
	ro.r = r;
	res.rc = kv_batch_execute(db, b, use_w ? &wo : NULL, use_r ? &ro : NULL);
	if (res.rc)
		res.detail = gokv_detail(res.rc);
	return res;
}

gokv_res gokv_batch_result(const kv_batch *b, size_t i) {
	gokv_res res;
	memset(&res, 0, sizeof res);
	const kv_value *v = NULL;
	res.rc = kv_batch_result(&v, &res.version, b, i);
	if (res.rc == KV_OK && v) {
		res.value = (kv_value *)v; // owned by the batch: not freed
		gokv_fill(&res);
	}
	return res;
}

gokv_res gokv_simple(kv *db, int which) {
	gokv_res res;
	memset(&res, 0, sizeof res);
	switch (which) {
	case 0: res.rc = kv_ping(db); break;
	case 1: res.rc = kv_compact(db); break;
	default: {
		char *s = NULL;
		res.rc = kv_cluster_describe(&s, db);
		if (s) {
			res.trace = strdup(s);
			kv_string_free(s);
		}
	}
	}
	if (res.rc)
		res.detail = gokv_detail(res.rc);
	return res;
}

// kv_backup (which 0: a = dir), kv_repair (1: a = node id or NULL) and
// kv_topology_change (2: a = change, b = node id or NULL). The JSON report,
// when the call gives one (whatever its outcome), comes back in trace.
gokv_res gokv_admin(kv *db, int which, const char *a, const char *b) {
	gokv_res res;
	memset(&res, 0, sizeof res);
	char *s = NULL;
	switch (which) {
	case 0: res.rc = kv_backup(&s, db, a); break;
	case 1: res.rc = kv_repair(&s, db, a); break;
	default: res.rc = kv_topology_change(&s, db, a, b); break;
	}
	if (res.rc)
		res.detail = gokv_detail(res.rc); // before any other call on this thread
	if (s) {
		res.trace = strdup(s);
		kv_string_free(s);
	}
	return res;
}

gokv_res gokv_ports(const kv *db) {
	gokv_res res;
	memset(&res, 0, sizeof res);
	int b = 0, h = 0;
	res.rc = kv_node_ports(&b, &h, db);
	res.version = (uint64_t)b;
	res.len = (size_t)h;
	if (res.rc)
		res.detail = gokv_detail(res.rc);
	return res;
}


gokv_open_res gokv_open(const char *path, const kv_open_options *o) {
	gokv_open_res res = {0, NULL, NULL};
	res.rc = kv_open(&res.db, path, o);
	if (res.rc)
		res.detail = gokv_detail(res.rc);
	return res;
}

gokv_open_res gokv_node_start(const kv_node_options *o) {
	gokv_open_res res = {0, NULL, NULL};
	res.rc = kv_node_start(&res.db, o);
	if (res.rc)
		res.detail = gokv_detail(res.rc);
	return res;
}

gokv_open_res gokv_client_open(const char *const *eps, size_t n, const kv_client_options *o) {
	gokv_open_res res = {0, NULL, NULL};
	res.rc = kv_client_open(&res.db, eps, n, o);
	if (res.rc)
		res.detail = gokv_detail(res.rc);
	return res;
}

int gokv_noop(int x) { return x; }
