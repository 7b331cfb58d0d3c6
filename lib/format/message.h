/*
 * format/message.h - the bodies of the binary protocol's frames (pure codec).
 *
 * Decoding is zero-copy: byte strings point into the frame body, which must
 * outlive the decoded message. Every length is checked against the bytes
 * that remain, and trailing bytes are an error, so a decoder never reads
 * past its input whatever it is given.
 *
 * Request bodies (after the frame header), integers big-endian, and
 * "bytes" = u32 length + that many bytes:
 *   GET     u8 consistency, u8 r, bytes key
 *   PUT     u8 consistency, u8 w, u64 ttl_s, bytes key, bytes value, bytes context
 *   DELETE  u8 consistency, u8 w, bytes key, bytes context
 *   CAS     u8 consistency, u8 w, u64 ttl_s, u64 expected, bytes key, bytes value
 *   BATCH   u8 consistency, u8 w, u32 count, count x (u8 kind, u64 ttl_s,
 *           bytes key, bytes value)
 *   PING, CLUSTER  empty
 *   GET_STATE  bytes key                 (between nodes)
 *   REPLICATE  bytes key, bytes state    (between nodes; record format 2)
 *   GOSSIP     bytes table               (between nodes; gossip_table.h)
 *   READ_STATE, REPAIR   as GET_STATE and REPLICATE, from clients
 *   PAXOS_PREPARE, PAXOS_PROPOSE, PAXOS_COMMIT   (between nodes)
 *              u64 hash of the key's home ids (cluster/serial.h), bytes key,
 *              bytes ballot, bytes state (empty for a prepare)
 *   HELLO, AUTH          the handshake (net/auth.h encodes them)
 *   BACKUP     bytes dir                 (an absolute path; the node
 *              checkpoints its store into dir/<its node id>)
 *   SCAN       u8 consistency, u8 r, u8 scan flags, u32 limit, bytes after
 *              (a storage key position, format/scan.h; empty = the start)
 *   SCAN_RANGE u8 scan flags, u32 limit, u64 last token, bytes after
 *              (between nodes: the states of keys after `after` up to and
 *              including token `last`)
 * Response bodies with status KV_OK:
 *   GET     u64 version, u64 expiry_ms, bytes context, u8 count (1..16),
 *           count x bytes value (concurrent siblings, the preferred first)
 *   PUT, DELETE, CAS   u64 version
 *   BATCH   u32 count, count x (i16 status, u64 version, u64 expiry_ms, bytes value)
 *   PING    empty;  CLUSTER  bytes json
 *   GET_STATE  bytes state;  REPLICATE  u64 version (of the merged state)
 *   GOSSIP     bytes table (the answering node's, after merging)
 *   PAXOS_*    bytes answer (format/paxos.h, kvi_paxos_answer)
 *   BACKUP     bytes json (the snapshot: nodeId, path, bytes, estimatedKeys)
 *   SCAN, SCAN_RANGE   format/scan.h (kvi_scan_page_encode, kvi_scan_range_*)
 * Response bodies with any other status (an error frame):
 *   u64 version (the current one for KV_ECONFLICT, else 0), bytes message
 */
#ifndef KVI_MESSAGE_H
#define KVI_MESSAGE_H

#include <stddef.h>
#include <stdint.h>

#include "format/frame.h"
#include "util/buf.h"

typedef struct kvi_bytes {
    const unsigned char *data;
    size_t len;
} kvi_bytes;

/* ------------------------------------------------------------- writing */


/* Starts a frame in b: reserves the header, to be filled by kvi_frame_finish
 * once the body has been appended. */
void kvi_frame_begin(kvi_buf *b);
/* Writes the header of the frame begun at offset start of b. Returns 0, or
 * -1 when the buffer failed or the body is over KVI_FRAME_MAX_BODY_LIMIT. */
int kvi_frame_finish(kvi_buf *b, size_t start, uint8_t opcode, uint16_t flags,
                     int16_t status, uint64_t request_id);

/* ------------------------------------------------------------- reading */

typedef struct kvi_reader {
    const unsigned char *p;
    size_t left;
    int failed; /* a read ran past the end */
} kvi_reader;

static inline kvi_reader kvi_reader_init(const void *data, size_t len)
{
    kvi_reader r = {data, len, 0};
    return r;
}

uint8_t kvi_read_u8(kvi_reader *r);
uint16_t kvi_read_u16(kvi_reader *r);
uint32_t kvi_read_u32(kvi_reader *r);
uint64_t kvi_read_u64(kvi_reader *r);
kvi_bytes kvi_read_bytes(kvi_reader *r);
/* Copies a decoded string field into out (room bytes, NUL-terminated): 0,
 * or -1 when it does not fit or holds a NUL. */
int kvi_bytes_to_cstring(char *out, size_t room, kvi_bytes in);
/* 0 when everything was read exactly; -1 on a short read or leftovers. */
static inline int kvi_reader_done(const kvi_reader *r)
{
    return r->failed || r->left != 0 ? -1 : 0;
}

/* ------------------------------------------------------------ requests */

typedef struct kvi_request {
    uint8_t opcode;
    uint8_t consistency; /* kv_consistency */
    uint8_t quorum;      /* explicit r or w */
    uint64_t ttl_s;
    uint64_t expected_version;
    kvi_bytes key;
    kvi_bytes value;
    kvi_bytes context;
    uint32_t batch_count;
    kvi_reader batch_ops; /* positioned at the first operation */
    /* SCAN and SCAN_RANGE: the position is in key. */
    uint8_t scan_flags;   /* KVI_SCAN_* (format/scan.h) */
    uint32_t limit;       /* keys wanted, 1..KV_SCAN_MAX_LIMIT */
    uint64_t last_token;  /* SCAN_RANGE: the range's last token */
    /* The route of a replica request (KVI_FRAME_FLAG_ROUTED): the epoch
     * of the ring the sender routed it by, and the hash of the key's
     * replicas in that ring (cluster/serial.h, kvi_serial_homes_hash), so
     * a replica on another epoch can tell whether the key's replicas
     * differ. Encoded after the body when routed is set. */
    int routed;
    uint64_t route_epoch;
    uint64_t route_hash;
} kvi_request;

/* One operation of a batch request. */
typedef struct kvi_batch_item {
    uint8_t kind; /* kv_batch_op */
    uint64_t ttl_s;
    kvi_bytes key;
    kvi_bytes value;
} kvi_batch_item;

/* Decodes the body of a request frame. Returns 0, or -1 for a malformed body
 * (short, with trailing bytes, an unknown batch kind, a batch count that the
 * body cannot hold). Batch operations are all checked here, so iterating
 * them with kvi_request_next_item afterwards cannot fail. */
int kvi_request_decode(kvi_request *out, uint8_t opcode, const void *body, size_t len);
/* Decodes the body of the request frame h: the route first (flag
 * KVI_FRAME_FLAG_ROUTED; only on GET_STATE, READ_STATE and REPLICATE),
 * then the body as kvi_request_decode. 0, or -1 (malformed, or
 * a route on another opcode). */
int kvi_request_decode_frame(kvi_request *out, const kvi_frame_header *h, const void *body);
/* 1 when the opcode may carry a route. */
int kvi_request_routable(uint8_t opcode);
/* Appends req's route when req->routed (after kvi_request_encode); the
 * frame then needs KVI_FRAME_FLAG_ROUTED. */
void kvi_request_encode_route(kvi_buf *b, const kvi_request *req);
/* The next batch operation; call batch_count times after a decode. */
void kvi_request_next_item(kvi_request *req, kvi_batch_item *item);

/* Appends a request body to b (the frame around it is the caller's). */
void kvi_request_encode(kvi_buf *b, const kvi_request *req);
void kvi_batch_item_encode(kvi_buf *b, const kvi_batch_item *item);

/* ----------------------------------------------------------- responses */

typedef struct kvi_response {
    uint8_t opcode;
    int16_t status;
    uint64_t version;
    uint64_t expiry_ms;
    kvi_bytes value;    /* GET value, CLUSTER json, or GET_STATE state */
    kvi_bytes context;
    kvi_bytes message;  /* error frames */
    uint32_t sibling_count; /* GET: values that follow; 0 on encode = just `value` */
    kvi_reader siblings;    /* GET: positioned at the first value */
    uint32_t batch_count;
    kvi_reader batch_results;
    /* BATCH: the outcomes carry a context and every sibling (the answer
     * frame has KVI_FRAME_FLAG_SIBLINGS, as the request had). */
    int batch_siblings;
} kvi_response;

/* One operation's outcome in a BATCH answer. Without siblings: status,
 * version, expiry and one value. With them (kvi_response.batch_siblings):
 * also the context, and sibling_count values (0..KVI_MAX_WIRE_SIBLINGS),
 * the first of them in value and all of them through siblings. */
typedef struct kvi_batch_outcome {
    int16_t status;
    uint64_t version;
    uint64_t expiry_ms;
    kvi_bytes value;
    kvi_bytes context;
    uint32_t sibling_count;
    kvi_reader siblings; /* positioned at the first value */
} kvi_batch_outcome;

/* A write request's options (TTL, consistency, W, context) from the public
 * write options; NULL leaves the request's defaults. */
struct kv_write_options;
void kvi_request_set_write_options(kvi_request *req, const struct kv_write_options *o);

int kvi_response_decode(kvi_response *out, uint8_t opcode, int16_t status,
                        const void *body, size_t len);
/* The same, for an answer frame with these flags (a BATCH answer with
 * KVI_FRAME_FLAG_SIBLINGS has outcomes with siblings). */
int kvi_response_decode_flags(kvi_response *out, uint8_t opcode, int16_t status, uint16_t flags,
                              const void *body, size_t len);
/* The next sibling of a GET response; call sibling_count times. */
kvi_bytes kvi_response_next_sibling(kvi_response *resp);
#define KVI_MAX_WIRE_SIBLINGS 16u
void kvi_response_next_outcome(kvi_response *resp, kvi_batch_outcome *out);

void kvi_response_encode(kvi_buf *b, const kvi_response *resp);
void kvi_batch_outcome_encode(kvi_buf *b, const kvi_batch_outcome *out);
/* The outcome with its context and the values[count] siblings (count at
 * most KVI_MAX_WIRE_SIBLINGS), for a BATCH answer with siblings. */
void kvi_batch_outcome_encode_siblings(kvi_buf *b, const kvi_batch_outcome *out,
                                       const kvi_bytes *values, uint32_t count);

#endif
