// Package kv is the Go binding of libkv, a Dynamo-style key-value store
// (libkv.so, include/kv/kv.h), through cgo.
//
//	db, err := kv.Open("/tmp/demo.kv", nil)            // an embedded store
//	ver, err := db.Put(ctx, []byte("k"), []byte("v"), kv.TTL(time.Hour))
//	v, err := db.Get(ctx, []byte("k"))                 // errors.Is(err, kv.ErrNotFound)
//	_, err = db.CAS(ctx, []byte("k"), v.Version, []byte("w"))
//
//	node, err := kv.StartNode(&kv.NodeOptions{DataDir: dir, NodeID: "n1", Listen: "127.0.0.1:0"})
//	client, err := kv.Dial([]string{node.Address()}, nil)
//
// Three kinds of handle (embedded, node, client) share the data calls, as in
// C. A handle is safe for concurrent use by many goroutines; Close waits for
// the calls in flight and is idempotent; calls after it fail with ErrClosed.
// Every value returned is copied into Go memory: nothing points into C.
//
// Contexts: a context that is already done fails the call before it starts.
// On node and client handles, whose calls may wait on the network, a call
// whose context ends while it runs returns at once with an error that
// matches the context's error and ErrTimeout (reads, nothing changed) or
// ErrUnknownOutcome (writes, which may still apply); the C call itself runs
// to its own end in the background, bounded by the client's RequestTimeout
// (libkv has no per-call timeout), and Close waits for it. Embedded calls do
// not wait on the network and are not interrupted.
package kv

/*
#include <stdlib.h>
#include "gokv.h"
*/
import "C"

import (
	"math"
	"net"
	"runtime"
	"strconv"
	"sync"
	"time"
	"unsafe"
)

// Kind is the kind of a handle.
type Kind int

const (
	Embedded Kind = iota // kv.Open
	NodeKind             // kv.StartNode
	Client               // kv.Dial
)

func (k Kind) String() string {
	switch k {
	case Embedded:
		return "embedded"
	case NodeKind:
		return "node"
	default:
		return "client"
	}
}

// SyncPolicy says when the write-ahead log reaches the disk.
type SyncPolicy int

const (
	SyncAlways   SyncPolicy = C.KV_SYNC_ALWAYS   // fsync before each write returns (default)
	SyncPeriodic SyncPolicy = C.KV_SYNC_PERIODIC // every SyncInterval
	SyncNone     SyncPolicy = C.KV_SYNC_NONE     // the OS decides
)

// Policy says how concurrent writes to one key (siblings) are resolved.
type Policy int

const (
	LWW      Policy = C.KV_POLICY_LWW      // last write wins (default)
	Siblings Policy = C.KV_POLICY_SIBLINGS // a read returns every sibling and a context
)

// GraceNone, as OpenOptions.TombstoneGrace, drops tombstones at the next
// compaction.
const GraceNone time.Duration = -1

// OpenOptions are the options of an embedded store (and of a node's store).
// The zero value (or nil) means the library's defaults.
type OpenOptions struct {
	ErrorIfMissing  bool          // fail with ErrInvalid when the store does not exist
	MaxKeySize      uint32        // bytes; 0 = 1024, up to 65536
	MaxValueSize    uint32        // bytes; 0 = 1 MiB, up to 64 MiB
	Sync            SyncPolicy    // default SyncAlways
	SyncInterval    time.Duration // for SyncPeriodic; 0 = 100 ms
	BlockCacheBytes uint64        // RocksDB's block cache; 0 = 64 MiB
	TombstoneGrace  time.Duration // 0 = one day; GraceNone = none; whole seconds
	// The latest records of recently used keys, held in front of RocksDB;
	// 0 = 64 MiB, RowCacheNone = none.
	RowCacheBytes uint64
}

// RowCacheNone in OpenOptions.RowCacheBytes: no row cache.
const RowCacheNone = ^uint64(0)

// NodeOptions are the options of a storage node hosted in this process
// (include/kv/options.h, kv_node_options, for each field's meaning).
type NodeOptions struct {
	DataDir string // required
	NodeID  string // required: 1-64 of [A-Za-z0-9._-]
	Listen  string // binary protocol "HOST:PORT"; "" = "127.0.0.1:0" (a free port)
	HTTP    string // HTTP API "HOST:PORT"; "" = none
	Store   OpenOptions

	// The uint fields below are C unsigned ints: StartNode refuses a value
	// over math.MaxUint32 with ErrInvalid (never truncates it).
	Peers            []string // binary addresses of the cluster's members
	Seeds            []string // members to join through
	Replicas         uint     // N; 0 = 3
	VNodes           uint     // 0 = 256
	Policy           Policy   // of the node's own handle: LWW or Siblings
	IOThreads        uint
	HTTPThreads      uint
	MaxRequestBytes  uint32
	IdleTimeout      time.Duration
	MaxConnections   uint
	InternodeTimeout time.Duration
	HintWindow       time.Duration // whole seconds, rounded up; at most math.MaxUint32 s
	HandoffKiBPerSec uint32
	FailurePause     time.Duration
	ClusterSecret    []byte
	ClientTokens     []string
	Insecure         bool
	TLSCertPEM       string
	TLSKeyPEM        string
	TLSCAPEM         string
	MaxBufferedBytes uint64
	// Metadata says where the cluster's topology record is kept: "" (the
	// default) among the members themselves, or
	// "etcd://HOST:PORT[,HOST:PORT...]/PREFIX" in etcd (its v3 JSON
	// gateway). Every member must be given the same; it needs Peers or
	// Seeds (a node alone has no topology: ErrInvalid). A URL that does
	// not parse is refused with ErrInvalid. See docs/CLUSTER.md.
	Metadata string

	// SlowRequest: a request that takes this long or longer is slow:
	// counted in kv_slow_requests_total and logged (at warn) once a minute.
	// 0 = 500 ms; at most an hour (the library refuses more with
	// ErrInvalid); whole milliseconds, rounded up.
	SlowRequest time.Duration
	// AEInterval is how often a node of a cluster runs an anti-entropy
	// exchange with the next member it shares token ranges with, jittered
	// by a quarter either way (docs/design/ANTI_ENTROPY.md). 0 = 60 s;
	// AEIntervalNever = no periodic exchanges, only the repair rounds asked
	// for (Repair); otherwise whole seconds, rounded up, at most a week
	// (the library refuses more with ErrInvalid). Other negative values are
	// refused with ErrInvalid.
	AEInterval time.Duration
	// RepairBytesPerSec bounds what an anti-entropy exchange may send and
	// receive in all, so that live traffic keeps priority; 0 = 16 MiB/s.
	RepairBytesPerSec uint64
	// AEDigestBits: the anti-entropy digest cuts the token space into
	// 2^AEDigestBits segments; 4..24, 0 = 18 (the library refuses others
	// with ErrInvalid). Every member must use the same.
	AEDigestBits uint
	// StreamBytesPerSec bounds what a node joining (or gaining ranges in
	// another topology change) streams in from the members it takes them
	// from; 0 = 32 MiB/s.
	StreamBytesPerSec uint64
	// Replace: this process takes the place of the dead member whose id is
	// NodeID (as Cassandra's replace_address), on an empty DataDir: it
	// fetches the cluster's topology from Peers or Seeds (one is required:
	// ErrInvalid otherwise), streams the member's ranges from the
	// survivors, repairs against them, then serves. While that member still
	// answers at its old address the node starts but does not take its
	// place (it logs why and tries again). Ignored once the node's store
	// holds the cluster's topology. See docs/CLUSTER.md.
	Replace bool
}

// AEIntervalNever, as NodeOptions.AEInterval, runs no periodic anti-entropy
// exchanges: only the repair rounds asked for (KV_AE_INTERVAL_NEVER).
const AEIntervalNever time.Duration = -1

// ClientOptions are the options of a client of remote nodes.
type ClientOptions struct {
	ConnectTimeout     time.Duration // 0 = 1 s
	RequestTimeout     time.Duration // 0 = 5 s: bounds every call
	ConnectionsPerNode uint          // 0 = 1; at most math.MaxUint32 (else ErrInvalid)
	Policy             Policy        // LWW (default) or Siblings
	AuthToken          string
	TLS                bool
	TLSCAPEM           string
	TLSCertPEM         string
	TLSKeyPEM          string
	// MaxInflight bounds the requests in flight on one connection; more
	// wait in the client's queue (up to RequestTimeout) until answers free
	// slots. 0 = 4096; at most math.MaxUint32.
	MaxInflight uint
	// HotCacheStaleness turns on a cache of hot keys' values in the client
	// (docs/CLUSTER.md, "The client's cache of hot keys"): a read of a key
	// read lately may be answered from it, without a request, up to this
	// stale; it may miss writes made through other handles within that
	// bound. 0 = no cache (the default); at most MaxHotCacheStaleness;
	// whole milliseconds, rounded up. Reads at Serial or All, GetTraced and
	// Batch never use it; a Put, Delete, CAS or Batch through this client
	// drops the key's entry, so the client reads its own writes.
	HotCacheStaleness time.Duration
	// HotCacheEntries is the most keys the cache holds, the least recently
	// read dropped first; 0 = 1024, at most MaxHotCacheEntries. Used only
	// with HotCacheStaleness.
	HotCacheEntries uint
}

// The limits of ClientOptions' cache of hot keys (kv_client_open refuses
// more with ErrInvalid, as Dial does).
const (
	MaxHotCacheStaleness time.Duration = time.Hour
	MaxHotCacheEntries   uint          = 1048576
)

// DB is a libkv handle of any kind.
type DB struct {
	mu     sync.RWMutex // held shared by every call, exclusively by Close
	db     *C.kv        // guarded by mu; nil once closed
	kind   Kind
	closed bool // guarded by mu
}

// Node is a storage node hosted in this process: a DB on the node's own
// data, which also serves other processes.
type Node struct {
	*DB
	host string
}

func newDB(p *C.kv, kind Kind) *DB {
	db := &DB{db: p, kind: kind}
	// A handle dropped without Close is closed when collected: no call can be
	// in flight then, since every call holds a reference to the DB.
	runtime.SetFinalizer(db, (*DB).Close)
	return db
}

// cmem collects C allocations of one call, freed together.
type cmem []unsafe.Pointer

func (m *cmem) str(s string) *C.char {
	c := C.CString(s)
	*m = append(*m, unsafe.Pointer(c))
	return c
}

func (m *cmem) strOrNil(s string) *C.char {
	if s == "" {
		return nil
	}
	return m.str(s)
}

func (m *cmem) bytes(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	c := C.CBytes(b)
	*m = append(*m, c)
	return c
}

func (m *cmem) strs(op, what string, ss []string) (**C.char, error) {
	if len(ss) == 0 {
		return nil, nil
	}
	arr := (**C.char)(C.calloc(C.size_t(len(ss)), C.size_t(unsafe.Sizeof((*C.char)(nil)))))
	*m = append(*m, unsafe.Pointer(arr))
	items := unsafe.Slice(arr, len(ss))
	for i, s := range ss {
		if err := noNUL(op, what, s); err != nil {
			return nil, err
		}
		items[i] = m.str(s)
	}
	return arr, nil
}

func (m *cmem) alloc(size uintptr) unsafe.Pointer {
	p := C.calloc(1, C.size_t(size))
	*m = append(*m, p)
	return p
}

func (m cmem) free() {
	for _, p := range m {
		C.free(p)
	}
}

func noNUL(op, what, s string) error {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return invalid(op, "%s must not contain NUL bytes", what)
		}
	}
	return nil
}

func millis(op, what string, d time.Duration) (C.uint32_t, error) {
	if d < 0 {
		return 0, invalid(op, "%s must not be negative, not %v", what, d)
	}
	if d == 0 {
		return 0, nil
	}
	ms := (d + time.Millisecond - 1) / time.Millisecond
	if ms > 1<<32-1 {
		ms = 1<<32 - 1
	}
	return C.uint32_t(ms), nil
}

// cuint is v as a C unsigned int, or ErrInvalid when it does not fit (a
// uint of a 64-bit Go is wider than C's 32-bit unsigned int).
func cuint(op, what string, v uint) (C.uint, error) {
	if uint64(v) > math.MaxUint32 {
		return 0, invalid(op, "%s must be at most %d, not %d", what, uint64(math.MaxUint32), uint64(v))
	}
	return C.uint(v), nil
}

// aeInterval is NodeOptions.AEInterval as kv_node_options.ae_interval_s.
func aeInterval(op string, d time.Duration) (C.uint32_t, error) {
	switch {
	case d == AEIntervalNever:
		return C.KV_AE_INTERVAL_NEVER, nil
	case d < 0:
		return 0, invalid(op, "AEInterval must not be negative (AEIntervalNever aside), not %v", d)
	}
	s := (d + time.Second - 1) / time.Second
	if s >= math.MaxUint32 { // above a week all the same: the library refuses it
		s = math.MaxUint32 - 1
	}
	return C.uint32_t(s), nil
}

func fillOpen(op string, o *C.kv_open_options, opts *OpenOptions) error {
	C.kv_open_options_init(o, C.KV_OPEN_OPTIONS_VERSION)
	if opts == nil {
		return nil
	}
	if opts.ErrorIfMissing {
		o.create_if_missing = 0
	}
	o.max_key_size = C.uint32_t(opts.MaxKeySize)
	o.max_value_size = C.uint32_t(opts.MaxValueSize)
	switch opts.Sync {
	case SyncAlways, SyncPeriodic, SyncNone:
		o.sync = C.kv_sync_policy(opts.Sync)
	default:
		return invalid(op, "unknown sync policy %d", opts.Sync)
	}
	var err error
	if o.sync_interval_ms, err = millis(op, "SyncInterval", opts.SyncInterval); err != nil {
		return err
	}
	o.block_cache_bytes = C.uint64_t(opts.BlockCacheBytes)
	o.row_cache_bytes = C.uint64_t(opts.RowCacheBytes)
	switch {
	case opts.TombstoneGrace == GraceNone:
		o.tombstone_grace_s = C.uint64_t(^uint64(0))
	case opts.TombstoneGrace < 0:
		return invalid(op, "TombstoneGrace must not be negative (GraceNone aside)")
	case opts.TombstoneGrace > 0:
		o.tombstone_grace_s = C.uint64_t((opts.TombstoneGrace + time.Second - 1) / time.Second)
	}
	return nil
}

// Open opens (or creates) an embedded store in the directory path. opts may
// be nil. Errors: ErrBusy (open in another process), ErrInvalid, ErrIO.
func Open(path string, opts *OpenOptions) (*DB, error) {
	if path == "" {
		return nil, invalid("open", "path must not be empty")
	}
	if err := noNUL("open", "path", path); err != nil {
		return nil, err
	}
	var m cmem
	defer m.free()
	o := (*C.kv_open_options)(m.alloc(unsafe.Sizeof(C.kv_open_options{})))
	if err := fillOpen("open", o, opts); err != nil {
		return nil, err
	}
	res := C.gokv_open(m.str(path), o)
	if res.rc != 0 {
		e := newError("open", res.rc, res.detail)
		e.Detail = path + ": " + e.Detail
		return nil, e
	}
	return newDB(res.db, Embedded), nil
}

// StartNode starts a storage node in this process, serving its store in
// opts.DataDir over the binary protocol (opts.Listen) and, when opts.HTTP is
// set, over HTTP. Errors: ErrBusy (a port in use, the store open
// elsewhere), ErrInvalid, ErrPermission (beyond loopback with neither a
// cluster secret nor client tokens), ErrIO.
func StartNode(opts *NodeOptions) (*Node, error) {
	const op = "start node"
	if opts == nil {
		return nil, invalid(op, "options are required (DataDir, NodeID)")
	}
	listen := opts.Listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	for _, f := range [][2]string{{"DataDir", opts.DataDir}, {"NodeID", opts.NodeID},
		{"Listen", listen}, {"HTTP", opts.HTTP}, {"TLSCertPEM", opts.TLSCertPEM},
		{"TLSKeyPEM", opts.TLSKeyPEM}, {"TLSCAPEM", opts.TLSCAPEM}, {"Metadata", opts.Metadata}} {
		if err := noNUL(op, f[0], f[1]); err != nil {
			return nil, err
		}
	}
	var m cmem
	defer m.free()
	store := (*C.kv_open_options)(m.alloc(unsafe.Sizeof(C.kv_open_options{})))
	if err := fillOpen(op, store, &opts.Store); err != nil {
		return nil, err
	}
	o := (*C.kv_node_options)(m.alloc(unsafe.Sizeof(C.kv_node_options{})))
	// The version of the header built against: it has every field set
	// below (metadata, the last, came with version 9; an older header has
	// no such field, and this does not build).
	C.kv_node_options_init(o, C.KV_NODE_OPTIONS_VERSION)
	o.data_dir = m.strOrNil(opts.DataDir)
	o.node_id = m.strOrNil(opts.NodeID)
	o.listen_addr = m.str(listen)
	o.http_addr = m.strOrNil(opts.HTTP)
	o.store = store
	var err error
	if o.peers, err = m.strs(op, "Peers", opts.Peers); err != nil {
		return nil, err
	}
	o.peer_count = C.size_t(len(opts.Peers))
	if o.seeds, err = m.strs(op, "Seeds", opts.Seeds); err != nil {
		return nil, err
	}
	o.seed_count = C.size_t(len(opts.Seeds))
	if o.client_tokens, err = m.strs(op, "ClientTokens", opts.ClientTokens); err != nil {
		return nil, err
	}
	o.client_token_count = C.size_t(len(opts.ClientTokens))
	for _, f := range []struct {
		what string
		to   *C.uint
		v    uint
	}{{"Replicas", &o.replicas, opts.Replicas}, {"VNodes", &o.vnodes, opts.VNodes},
		{"IOThreads", &o.io_threads, opts.IOThreads}, {"HTTPThreads", &o.http_threads, opts.HTTPThreads},
		{"MaxConnections", &o.max_connections, opts.MaxConnections},
		{"AEDigestBits", &o.ae_digest_bits, opts.AEDigestBits}} {
		if *f.to, err = cuint(op, f.what, f.v); err != nil {
			return nil, err
		}
	}
	if opts.Policy != LWW && opts.Policy != Siblings {
		return nil, invalid(op, "Policy must be LWW or Siblings")
	}
	o.policy = C.kv_conflict_policy(opts.Policy)
	o.max_request_bytes = C.uint32_t(opts.MaxRequestBytes)
	if o.idle_timeout_ms, err = millis(op, "IdleTimeout", opts.IdleTimeout); err != nil {
		return nil, err
	}
	if o.internode_timeout_ms, err = millis(op, "InternodeTimeout", opts.InternodeTimeout); err != nil {
		return nil, err
	}
	if o.failure_pause_ms, err = millis(op, "FailurePause", opts.FailurePause); err != nil {
		return nil, err
	}
	if opts.HintWindow < 0 {
		return nil, invalid(op, "HintWindow must not be negative")
	}
	if hw := (opts.HintWindow + time.Second - 1) / time.Second; hw > math.MaxUint32 {
		return nil, invalid(op, "HintWindow must be at most %d s, not %v", uint64(math.MaxUint32), opts.HintWindow)
	} else {
		o.hint_window_s = C.uint32_t(hw)
	}
	o.handoff_kib_per_s = C.uint32_t(opts.HandoffKiBPerSec)
	o.cluster_secret = m.bytes(opts.ClusterSecret)
	o.cluster_secret_len = C.size_t(len(opts.ClusterSecret))
	if opts.Insecure {
		o.insecure = 1
	}
	o.tls_cert_pem = m.strOrNil(opts.TLSCertPEM)
	o.tls_key_pem = m.strOrNil(opts.TLSKeyPEM)
	o.tls_ca_pem = m.strOrNil(opts.TLSCAPEM)
	o.max_buffered_bytes = C.uint64_t(opts.MaxBufferedBytes)
	// Versions 5 to 8. The library's own limits (SlowRequest up to an hour,
	// AEInterval up to a week, AEDigestBits 4..24, Replace with peers or
	// seeds) are checked by kv_node_start: its refusal is ErrInvalid.
	if o.slow_request_ms, err = millis(op, "SlowRequest", opts.SlowRequest); err != nil {
		return nil, err
	}
	if o.ae_interval_s, err = aeInterval(op, opts.AEInterval); err != nil {
		return nil, err
	}
	o.repair_bytes_per_s = C.uint64_t(opts.RepairBytesPerSec)
	o.stream_bytes_per_s = C.uint64_t(opts.StreamBytesPerSec)
	if opts.Replace {
		o.replace = 1
	}
	o.metadata = m.strOrNil(opts.Metadata) // kv_node_options version 9
	res := C.gokv_node_start(o)
	if res.rc != 0 {
		e := newError(op, res.rc, res.detail)
		e.Detail = opts.NodeID + ": " + e.Detail
		return nil, e
	}
	host := listen
	if h, _, err := net.SplitHostPort(listen); err == nil {
		host = h
	}
	return &Node{DB: newDB(res.db, NodeKind), host: host}, nil
}

// Dial opens a client of remote nodes, given their binary-protocol
// addresses ("HOST:PORT"). Nothing connects until the first call (Ping
// checks that a node answers). opts may be nil. Errors: ErrInvalid (no
// endpoint, an unparsable one).
func Dial(endpoints []string, opts *ClientOptions) (*DB, error) {
	const op = "dial"
	if len(endpoints) == 0 {
		return nil, invalid(op, "at least one HOST:PORT endpoint is needed")
	}
	if opts == nil {
		opts = &ClientOptions{}
	}
	for _, f := range [][2]string{{"AuthToken", opts.AuthToken}, {"TLSCAPEM", opts.TLSCAPEM},
		{"TLSCertPEM", opts.TLSCertPEM}, {"TLSKeyPEM", opts.TLSKeyPEM}} {
		if err := noNUL(op, f[0], f[1]); err != nil {
			return nil, err
		}
	}
	var m cmem
	defer m.free()
	eps, err := m.strs(op, "endpoints", endpoints)
	if err != nil {
		return nil, err
	}
	o := (*C.kv_client_options)(m.alloc(unsafe.Sizeof(C.kv_client_options{})))
	C.kv_client_options_init(o, C.KV_CLIENT_OPTIONS_VERSION)
	if o.connect_timeout_ms, err = millis(op, "ConnectTimeout", opts.ConnectTimeout); err != nil {
		return nil, err
	}
	if o.request_timeout_ms, err = millis(op, "RequestTimeout", opts.RequestTimeout); err != nil {
		return nil, err
	}
	if o.connections_per_node, err = cuint(op, "ConnectionsPerNode", opts.ConnectionsPerNode); err != nil {
		return nil, err
	}
	if opts.Policy != LWW && opts.Policy != Siblings {
		return nil, invalid(op, "Policy must be LWW or Siblings")
	}
	o.policy = C.kv_conflict_policy(opts.Policy)
	o.auth_token = m.strOrNil(opts.AuthToken)
	if opts.TLS {
		o.tls = 1
	}
	o.tls_ca_pem = m.strOrNil(opts.TLSCAPEM)
	o.tls_cert_pem = m.strOrNil(opts.TLSCertPEM)
	o.tls_key_pem = m.strOrNil(opts.TLSKeyPEM)
	// kv_client_options version 4 (the header built against has version 5
	// at least: an older one has no hot_cache_* fields, and this does not
	// build). manual_loop stays 0: the binding makes only blocking calls,
	// and the client's own thread runs its event loop.
	if o.max_inflight, err = cuint(op, "MaxInflight", opts.MaxInflight); err != nil {
		return nil, err
	}
	// Version 5: the cache of hot keys.
	if opts.HotCacheStaleness > MaxHotCacheStaleness {
		return nil, invalid(op, "HotCacheStaleness must be at most %v, not %v", MaxHotCacheStaleness, opts.HotCacheStaleness)
	}
	if o.hot_cache_staleness_ms, err = millis(op, "HotCacheStaleness", opts.HotCacheStaleness); err != nil {
		return nil, err
	}
	if opts.HotCacheEntries > MaxHotCacheEntries {
		return nil, invalid(op, "HotCacheEntries must be at most %d, not %d", MaxHotCacheEntries, opts.HotCacheEntries)
	}
	o.hot_cache_entries = C.uint32_t(opts.HotCacheEntries)
	res := C.gokv_client_open(eps, C.size_t(len(endpoints)), o)
	if res.rc != 0 {
		return nil, newError(op, res.rc, res.detail)
	}
	return newDB(res.db, Client), nil
}

// Kind returns the kind of the handle.
func (db *DB) Kind() Kind { return db.kind }

// Closed reports whether Close has run.
func (db *DB) Closed() bool {
	db.mu.RLock()
	defer db.mu.RUnlock()
	return db.closed
}

// Close closes the handle: it waits for the calls in flight, then releases
// it (an embedded store syncs its log first; a node stops serving). Later
// calls fail with ErrClosed. Idempotent and safe to call concurrently.
func (db *DB) Close() error {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.closed {
		return nil
	}
	db.closed = true
	C.kv_close(db.db)
	db.db = nil
	runtime.SetFinalizer(db, nil)
	return nil
}

// acquire holds the handle open for one call; release with db.mu.RUnlock.
func (db *DB) acquire(op string) (*C.kv, error) {
	db.mu.RLock()
	if db.closed {
		db.mu.RUnlock()
		return nil, closedError(op)
	}
	return db.db, nil
}

// Ports returns a node's binary-protocol port and its HTTP port (0 without
// HTTP).
func (n *Node) Ports() (binary, http int, err error) {
	p, err := n.acquire("ports")
	if err != nil {
		return 0, 0, err
	}
	res := C.gokv_ports(p)
	n.mu.RUnlock()
	if res.rc != 0 {
		return 0, 0, newError("ports", res.rc, res.detail)
	}
	return int(res.version), int(res.len), nil
}

// Address returns the node's binary-protocol "HOST:PORT", with the port
// actually bound: give it to Dial or to other nodes' Peers or Seeds. "" once
// closed.
func (n *Node) Address() string {
	b, _, err := n.Ports()
	if err != nil {
		return ""
	}
	return net.JoinHostPort(n.host, strconv.Itoa(b))
}

// HTTPAddress returns the HTTP API's "HOST:PORT", or "" without HTTP.
func (n *Node) HTTPAddress() string {
	_, h, err := n.Ports()
	if err != nil || h == 0 {
		return ""
	}
	return net.JoinHostPort(n.host, strconv.Itoa(h))
}
