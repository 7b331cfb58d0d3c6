/*
 * format/frame.h - the binary protocol's frame codec (pure: bytes in, frames
 * out, no I/O), used by the client and the node alike.
 *
 * Every frame is a 24-byte header followed by its body:
 *
 *   off  0  u8[2] magic       'k' 'v'
 *   off  2  u8    version     KVI_PROTOCOL_VERSION
 *   off  3  u8    opcode      kvi_opcode
 *   off  4  u16   flags       bit 0: response; in requests, bit 1: the caller
 *                             wants siblings (SIBLINGS/MERGE policy; else
 *                             LWW), bit 2: forwarded by a node, bit 3:
 *                             a handed-off hint, bit 4: home replicas
 *                             only, bit 5: the body ends with the route
 *                             (epoch, replicas hash); other bits must be 0
 *   off  6  i16   status      KV_OK or a KV_E* code; 0 in requests
 *   off  8  u64   request id  chosen by the requester, echoed in the response,
 *                             so many requests share one connection and are
 *                             answered in any order
 *   off 16  u32   body length bytes after the header
 *   off 20  u32   checksum    low 32 bits of xxh3-64 over the body, seeded
 *                             with xxh3-64 of header bytes 0..20
 *
 * All integers are big-endian. A receiver reads the header first and checks
 * the body length against its limit before it allocates anything.
 */
#ifndef KVI_FRAME_H
#define KVI_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define KVI_FRAME_HEADER 24u
#define KVI_PROTOCOL_VERSION 1u
#define KVI_FRAME_FLAG_RESPONSE 0x0001u
#define KVI_FRAME_FLAG_SIBLINGS 0x0002u
#define KVI_FRAME_FLAG_FORWARDED 0x0004u
/* REPLICATE of a hint to its owner: merge it even if the ring has moved
 * the key elsewhere since (it is the owner's data either way). */
#define KVI_FRAME_FLAG_HANDOFF 0x0008u
/* A write that may be acknowledged only by home replicas: no stand-ins
 * (sloppy quorum off for this request, as Riak's pw). */
#define KVI_FRAME_FLAG_HOME_ONLY 0x0010u
/* A replica request routed by a ring of the topology (GET_STATE,
 * READ_STATE, REPLICATE): its body ends with the route, u64 epoch
 * of the sender's ring and u64 hash of the key's replicas in it
 * (format/message.h, kvi_request.routed). */
#define KVI_FRAME_FLAG_ROUTED 0x0020u
#define KVI_FRAME_FLAGS_KNOWN 0x003fu
/* Default and absolute largest body: a batch of large values must fit, a
 * frame claiming gigabytes must not make anyone allocate them. */
#define KVI_FRAME_DEFAULT_MAX_BODY (4u * 1024u * 1024u)
#define KVI_FRAME_MAX_BODY_LIMIT (256u * 1024u * 1024u)

typedef enum kvi_opcode {
    KVI_OP_PING = 1,
    KVI_OP_GET = 2,
    KVI_OP_PUT = 3,
    KVI_OP_DELETE = 4,
    KVI_OP_CAS = 5,
    KVI_OP_BATCH = 6,
    KVI_OP_CLUSTER = 7,
    /* Between nodes: a key's replicated state (format/state.h). */
    KVI_OP_GET_STATE = 8,
    KVI_OP_REPLICATE = 9,
    /* Between nodes: push-pull of the gossiped member table. */
    KVI_OP_GOSSIP = 10,
    /* Between nodes: a state for a stand-in to keep as a hint for a home
     * replica that is down (cluster/hints.h). */
    KVI_OP_HINT = 11,
    /* Connection set-up: prove the cluster secret or show a client token
     * (net/auth.h). */
    KVI_OP_HELLO = 12,
    KVI_OP_AUTH = 13,
    /* A client's side of client-side routing: a replica's state for its
     * own read (as GET_STATE), and its read repair (as REPLICATE). Data
     * operations, open to a client with a token; GET_STATE and REPLICATE
     * stay between peers (net/auth.h). */
    KVI_OP_READ_STATE = 14,
    KVI_OP_REPAIR = 15,
    /* Between nodes: per-key Paxos for SERIAL requests (format/paxos.h),
     * from the coordinating node to the key's home replicas. */
    KVI_OP_PAXOS_PREPARE = 16,
    KVI_OP_PAXOS_PROPOSE = 17,
    KVI_OP_PAXOS_COMMIT = 18,
    /* An admin request from a client: the node checkpoints its store into
     * a directory on its own machine (kv_backup on a client handle). Needs
     * a client token when the node has tokens, as data operations do. */
    KVI_OP_BACKUP = 19,
    /* A client's scan: one page of live keys in token order from a
     * position (format/scan.h); the node reads the ranges' replicas. */
    KVI_OP_SCAN = 20,
    /* Between nodes: a replica's key states in one ring range, for the
     * coordinator of a SCAN (cluster/scan.h). */
    KVI_OP_SCAN_RANGE = 21,
    /* Between nodes: anti-entropy's digest of segment ranges, and the keys
     * and entry hashes of one (format/ae.h). */
    KVI_OP_AE_DIGEST = 22,
    KVI_OP_AE_KEYS = 23,
    /* An admin request from a client: the node starts an anti-entropy
     * repair round (kv_repair); the answer, a JSON object, names the round
     * to wait for in its cluster description. A client token, as BACKUP. */
    KVI_OP_REPAIR_START = 24,
    /* Between nodes: agreeing on the next topology record, and fetching a
     * node's (format/topology_paxos.h messages and answers). */
    KVI_OP_TOPOLOGY = 25,
    /* An admin request from a client: a topology change (kv_topology_change:
     * leave, remove, abort), as a JSON object; the answer, a JSON object,
     * is the record once the change is recorded. A client token, as
     * BACKUP. */
    KVI_OP_TOPOLOGY_CHANGE = 26,
    KVI_OP_MAX = 26
} kvi_opcode;

typedef struct kvi_frame_header {
    uint8_t version;
    uint8_t opcode;
    uint16_t flags;
    int16_t status;
    uint64_t request_id;
    uint32_t body_len;
    uint32_t checksum;
} kvi_frame_header;

/* Outcomes of kvi_frame_parse_header besides KV_OK. */
typedef enum kvi_frame_error {
    KVI_FRAME_OK = 0,
    KVI_FRAME_NEED_MORE = 1,   /* fewer than KVI_FRAME_HEADER bytes so far */
    KVI_FRAME_BAD_MAGIC = 2,
    KVI_FRAME_BAD_VERSION = 3,
    KVI_FRAME_BAD_OPCODE = 4,
    KVI_FRAME_BAD_FLAGS = 5,
    KVI_FRAME_TOO_BIG = 6,     /* body length over the receiver's limit */
    KVI_FRAME_BAD_CHECKSUM = 7
} kvi_frame_error;

/* A short text for a kvi_frame_error, for logs and error frames. */
const char *kvi_frame_error_text(kvi_frame_error e);

/* Parses the header at the start of buf (len bytes so far). Checks magic,
 * version, opcode, flags and body length (<= max_body) before anything else
 * is looked at; the checksum is checked by kvi_frame_verify once the body is
 * in. */
kvi_frame_error kvi_frame_parse_header(kvi_frame_header *out, const void *buf,
                                       size_t len, uint32_t max_body);

/* Checks the checksum of a complete frame: header bytes and body. */
kvi_frame_error kvi_frame_verify(const kvi_frame_header *h, const void *header,
                                 const void *body);

/* Writes the 24-byte header for h (its body_len set) with the checksum of
 * body computed here. */
void kvi_frame_encode_header(unsigned char out[KVI_FRAME_HEADER],
                             const kvi_frame_header *h, const void *body);

#endif
