/* net/tls.c - TLS sessions over the binary protocol's sockets (see tls.h). */
#include "net/tls.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include <kv/common.h>
#include "util/error.h"

/* GnuTLS's defaults without the versions RFC 8996 retired. */
static const char PRIORITIES[] = "NORMAL:-VERS-TLS1.0:-VERS-TLS1.1";

struct kvi_tls {
    gnutls_certificate_credentials_t cred;
    gnutls_priority_t priority;
    int is_server;
    int has_ca;
    int has_cert;
};

struct kvi_tls_session {
    gnutls_session_t s;
    const kvi_tls *t;
    int verified; /* the other side's certificate verified against the CA */
};

static gnutls_datum_t datum(const char *pem)
{
    gnutls_datum_t d = {(unsigned char *)pem, (unsigned)strlen(pem)};
    return d;
}

int kvi_tls_new(kvi_tls **out, int is_server, const char *cert_pem, const char *key_pem,
                const char *ca_pem)
{
    *out = NULL;
    if (!cert_pem != !key_pem)
        return kvi_error(KV_EINVAL, "TLS: a certificate and its key go together");
    if (is_server && !cert_pem)
        return kvi_error(KV_EINVAL, "TLS: a server needs a certificate and a key");
    kvi_tls *t = calloc(1, sizeof *t);
    if (!t)
        return kvi_error(KV_ENOMEM, "out of memory setting up TLS");
    t->is_server = is_server;
    int rc = gnutls_certificate_allocate_credentials(&t->cred);
    if (rc == GNUTLS_E_SUCCESS)
        rc = gnutls_priority_init(&t->priority, PRIORITIES, NULL);
    if (rc != GNUTLS_E_SUCCESS) {
        kvi_tls_free(t);
        return kvi_error(KV_ENOMEM, "TLS: %s", gnutls_strerror(rc));
    }
    if (cert_pem) {
        gnutls_datum_t c = datum(cert_pem), k = datum(key_pem);
        rc = gnutls_certificate_set_x509_key_mem(t->cred, &c, &k, GNUTLS_X509_FMT_PEM);
        if (rc < 0) {
            kvi_tls_free(t);
            return kvi_error(KV_EINVAL, "TLS certificate or key refused: %s",
                             gnutls_strerror(rc));
        }
        t->has_cert = 1;
    }
    if (ca_pem) {
        gnutls_datum_t ca = datum(ca_pem);
        rc = gnutls_certificate_set_x509_trust_mem(t->cred, &ca, GNUTLS_X509_FMT_PEM);
        if (rc <= 0) {
            kvi_tls_free(t);
            return kvi_error(KV_EINVAL, "TLS CA refused: %s",
                             rc < 0 ? gnutls_strerror(rc) : "no certificate in it");
        }
        t->has_ca = 1;
    } else if (!is_server) {
        /* A client without a CA of its own trusts what the system trusts. */
        gnutls_certificate_set_x509_system_trust(t->cred);
    }
    *out = t;
    return KV_OK;
}

void kvi_tls_free(kvi_tls *t)
{
    if (!t)
        return;
    if (t->priority)
        gnutls_priority_deinit(t->priority);
    if (t->cred)
        gnutls_certificate_free_credentials(t->cred);
    free(t);
}

static int new_session(kvi_tls_session **out, const kvi_tls *t, int fd, unsigned flags)
{
    *out = NULL;
    kvi_tls_session *ts = calloc(1, sizeof *ts);
    if (!ts)
        return kvi_error(KV_ENOMEM, "out of memory starting TLS");
    ts->t = t;
    int rc = gnutls_init(&ts->s, flags);
    if (rc == GNUTLS_E_SUCCESS)
        rc = gnutls_priority_set(ts->s, t->priority);
    if (rc == GNUTLS_E_SUCCESS)
        rc = gnutls_credentials_set(ts->s, GNUTLS_CRD_CERTIFICATE, t->cred);
    if (rc != GNUTLS_E_SUCCESS) {
        kvi_tls_close(ts);
        return kvi_error(KV_ENOMEM, "TLS: %s", gnutls_strerror(rc));
    }
    gnutls_transport_set_int(ts->s, fd);
    *out = ts;
    return KV_OK;
}

/* Why the other side's certificate did not verify, in words. */
static int verify_failure(kvi_tls_session *ts, const char *who)
{
    unsigned status = gnutls_session_get_verify_cert_status(ts->s);
    gnutls_datum_t text = {NULL, 0};
    const char *why = "unknown reason";
    if (status && gnutls_certificate_verification_status_print(
                      status, gnutls_certificate_type_get(ts->s), &text, 0) == 0)
        why = (const char *)text.data;
    int rc = kvi_error(KV_EPERM, "TLS: %s certificate does not verify: %s", who, why);
    gnutls_free(text.data);
    return rc;
}

int kvi_tls_connect(kvi_tls_session **out, const kvi_tls *t, int fd, const char *host,
                    uint32_t timeout_ms)
{
    kvi_tls_session *ts;
    int rc = new_session(&ts, t, fd, GNUTLS_CLIENT);
    if (rc != KV_OK)
        return rc;
    /* Checks the chain and that the certificate names host (an IP address
     * in its subjectAltName when host is one). */
    gnutls_session_set_verify_cert(ts->s, host, 0);
    gnutls_handshake_set_timeout(ts->s, timeout_ms ? timeout_ms : GNUTLS_DEFAULT_HANDSHAKE_TIMEOUT);
    do {
        rc = gnutls_handshake(ts->s);
    } while (rc < 0 && !gnutls_error_is_fatal(rc) && rc != GNUTLS_E_AGAIN);
    if (rc == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
        rc = verify_failure(ts, "the node's");
    } else if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_TIMEDOUT) {
        rc = kvi_error(KV_ETIMEDOUT, "TLS handshake with %s timed out", host);
    } else if (rc < 0) {
        rc = kvi_error(KV_EUNAVAILABLE, "TLS handshake with %s failed: %s (does it speak "
                                        "TLS?)", host, gnutls_strerror(rc));
    } else {
        ts->verified = 1;
        *out = ts;
        return KV_OK;
    }
    kvi_tls_close(ts);
    return rc;
}

int kvi_tls_accept(kvi_tls_session **out, const kvi_tls *t, int fd)
{
    kvi_tls_session *ts;
    int rc = new_session(&ts, t, fd, GNUTLS_SERVER | GNUTLS_NONBLOCK);
    if (rc != KV_OK)
        return rc;
    if (t->has_ca) {
        /* Asked, not required: clients without a certificate still come
         * in (tokens guard data); peers must show one (net/auth.h). */
        gnutls_certificate_server_set_request(ts->s, GNUTLS_CERT_REQUEST);
    }
    *out = ts;
    return KV_OK;
}

int kvi_tls_handshake(kvi_tls_session *ts)
{
    int rc = gnutls_handshake(ts->s);
    if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED)
        return gnutls_record_get_direction(ts->s) ? KVI_TLS_WANT_WRITE : KVI_TLS_WANT_READ;
    if (rc < 0)
        return kvi_error(KV_EIO, "TLS handshake failed: %s", gnutls_strerror(rc));
    if (!ts->t->has_ca)
        return KV_OK;
    unsigned status = 0;
    rc = gnutls_certificate_verify_peers2(ts->s, &status);
    if (rc == GNUTLS_E_NO_CERTIFICATE_FOUND)
        return KV_OK; /* a client without a certificate */
    if (rc < 0)
        return kvi_error(KV_EPERM, "TLS: cannot verify the client's certificate: %s",
                         gnutls_strerror(rc));
    if (status != 0) {
        gnutls_datum_t text = {NULL, 0};
        gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &text, 0);
        rc = kvi_error(KV_EPERM, "TLS: the client's certificate does not verify: %s",
                       text.data ? (const char *)text.data : "unknown reason");
        gnutls_free(text.data);
        return rc;
    }
    ts->verified = 1;
    return KV_OK;
}

int kvi_tls_peer_verified(const kvi_tls_session *ts)
{
    return ts && ts->verified;
}

static ssize_t outcome(kvi_tls_session *ts, ssize_t n)
{
    if (n >= 0)
        return n;
    if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
        return gnutls_record_get_direction(ts->s) ? KVI_TLS_WANT_WRITE : KVI_TLS_WANT_READ;
    if (n == GNUTLS_E_PREMATURE_TERMINATION)
        return 0; /* the peer closed without close_notify: an end all the same */
    return -1;
}

ssize_t kvi_tls_recv(kvi_tls_session *ts, void *buf, size_t len)
{
    return outcome(ts, gnutls_record_recv(ts->s, buf, len));
}

ssize_t kvi_tls_send(kvi_tls_session *ts, const void *buf, size_t len)
{
    return outcome(ts, gnutls_record_send(ts->s, buf, len));
}

size_t kvi_tls_pending(kvi_tls_session *ts)
{
    return gnutls_record_check_pending(ts->s);
}

void kvi_tls_close(kvi_tls_session *ts)
{
    if (!ts)
        return;
    if (ts->s)
        gnutls_deinit(ts->s);
    free(ts);
}
