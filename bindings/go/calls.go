package kv

/*
#include <stdlib.h>
#include "gokv.h"
*/
import "C"

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Consistency is the consistency level of one call. In a cluster the
// default is Quorum (Serial for CAS); an embedded store has one replica, so
// every level behaves as One there.
type Consistency int

const (
	Default Consistency = C.KV_CONSISTENCY_DEFAULT
	One     Consistency = C.KV_CONSISTENCY_ONE
	Quorum  Consistency = C.KV_CONSISTENCY_QUORUM
	All     Consistency = C.KV_CONSISTENCY_ALL
	// Serial is linearizable per key (per-key Paxos among the key's home
	// replicas; a majority of them must be reachable).
	Serial Consistency = C.KV_CONSISTENCY_SERIAL
)

func (c Consistency) String() string {
	switch c {
	case Default:
		return "default"
	case One:
		return "one"
	case Quorum:
		return "quorum"
	case All:
		return "all"
	case Serial:
		return "serial"
	}
	return "Consistency(" + itoa(int(c)) + ")"
}

// Option is an option of one call: a Consistency level, TTL(d), R(n),
// W(n), CausalContext(b) or HomeOnly.
type Option interface{ apply(*callOpts) error }

type callOpts struct {
	ttl      uint64
	hasTTL   bool
	cons     Consistency
	r, w     uint
	causal   []byte
	homeOnly bool
	set      bool
}

func (c Consistency) apply(o *callOpts) error {
	switch c {
	case Default, One, Quorum, All, Serial:
	default:
		return invalid("options", "unknown consistency level %d", int(c))
	}
	if o.r != 0 || o.w != 0 {
		return invalid("options", "give a consistency level or R/W, not both")
	}
	o.cons = c
	return nil
}

type ttlOpt time.Duration

// TTL makes a write expire after d (rounded up to whole seconds; d > 0).
func TTL(d time.Duration) Option { return ttlOpt(d) }

func (t ttlOpt) apply(o *callOpts) error {
	if t <= 0 {
		return invalid("options", "TTL must be positive, not %v", time.Duration(t))
	}
	o.ttl = uint64((time.Duration(t) + time.Second - 1) / time.Second)
	o.hasTTL = true
	return nil
}

type countOpt struct {
	n     uint
	write bool
}

// R reads from n replicas (an explicit count instead of a level).
func R(n uint) Option { return countOpt{n, false} }

// W acknowledges a write once n replicas have it.
func W(n uint) Option { return countOpt{n, true} }

func (c countOpt) apply(o *callOpts) error {
	if c.n == 0 {
		return invalid("options", "R and W must be at least 1")
	}
	if o.cons != Default {
		return invalid("options", "give a consistency level or R/W, not both")
	}
	if c.write {
		o.w = c.n
	} else {
		o.r = c.n
	}
	return nil
}

type causalOpt []byte

// CausalContext passes a Value.Context from an earlier read, so that the
// write supersedes exactly the siblings that read saw.
func CausalContext(b []byte) Option { return causalOpt(b) }

func (c causalOpt) apply(o *callOpts) error { o.causal = c; return nil }

type homeOnlyOpt struct{}

// HomeOnly counts only the key's home replicas toward a write's level
// (no sloppy quorum): with a home replica down the write fails with
// ErrUnavailable instead.
var HomeOnly Option = homeOnlyOpt{}

func (homeOnlyOpt) apply(o *callOpts) error { o.homeOnly = true; return nil }

func parseOpts(op string, opts []Option, write, ttl bool) (callOpts, error) {
	var o callOpts
	for _, x := range opts {
		if x == nil {
			continue
		}
		if err := x.apply(&o); err != nil {
			e := err.(*Error)
			e.Op = op
			return o, e
		}
		o.set = true
	}
	if !write && (o.hasTTL || o.w != 0 || o.causal != nil || o.homeOnly) {
		return o, invalid(op, "TTL, W, CausalContext and HomeOnly apply to writes only")
	}
	if write && !ttl && o.hasTTL {
		return o, invalid(op, "TTL does not apply to %s", op)
	}
	if write && o.r != 0 {
		return o, invalid(op, "R applies to reads only")
	}
	return o, nil
}

func (o *callOpts) level() C.int {
	if o.r != 0 || o.w != 0 {
		return C.KV_CONSISTENCY_EXPLICIT
	}
	return C.int(o.cons)
}

func b2i(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// Value is a value read from the store, copied into Go memory.
type Value struct {
	Data    []byte    // the bytes (of the first sibling); never nil, maybe empty
	Version uint64    // 1 for the first write of a key, one more per write
	Expiry  time.Time // when it expires; the zero Time when it never does
	// Siblings holds every concurrent sibling when a client or node with the
	// Siblings policy found several; nil otherwise.
	Siblings [][]byte
	// Context is the causal context to pass back with CausalContext (empty
	// on embedded handles).
	Context []byte
}

func copyValue(r *C.gokv_res, full bool) *Value {
	v := &Value{Data: C.GoBytes(r.data, C.int(r.len)), Version: uint64(r.version)}
	if r.expiry_ms != 0 {
		v.Expiry = time.UnixMilli(int64(r.expiry_ms))
	}
	if full {
		if r.siblings > 1 {
			v.Siblings = make([][]byte, int(r.siblings))
			for i := range v.Siblings {
				var n C.size_t
				p := C.kv_value_sibling(r.value, C.size_t(i), &n)
				v.Siblings[i] = C.GoBytes(p, C.int(n))
			}
		}
		if r.ctx_len != 0 {
			v.Context = C.GoBytes(r.ctx, C.int(r.ctx_len))
		}
	}
	return v
}

// run runs call under the handle's guard, honouring ctx: see the package
// doc. write says whether an abandoned call may still apply.
func (db *DB) run(ctx context.Context, op string, write bool, call func(p *C.kv) error) error {
	if err := ctx.Err(); err != nil {
		return &Error{Op: op, Code: codeTimeout, Detail: "not started", Index: -1, cause: err}
	}
	p, err := db.acquire(op)
	if err != nil {
		return err
	}
	if db.kind == Embedded || ctx.Done() == nil {
		defer db.mu.RUnlock()
		return call(p)
	}
	done := make(chan error, 1)
	go func() {
		defer db.mu.RUnlock() // Close waits for the C call, even when abandoned
		done <- call(p)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		code := codeTimeout
		if write {
			code = codeUnknownOutcome
		}
		return &Error{Op: op, Code: code, Detail: "abandoned when its context ended",
			Index: -1, cause: ctx.Err()}
	}
}

// Get reads the value of key. A key that is absent, deleted or expired gives
// ErrNotFound. Options: a Consistency level or R(n). Errors: ErrInvalid
// (empty key), ErrTooBig, ErrTimeout and ErrUnavailable (cluster),
// ErrCorrupt, ErrClosed.
func (db *DB) Get(ctx context.Context, key []byte, opts ...Option) (*Value, error) {
	v, _, err := db.get(ctx, "get", key, opts, false)
	return v, err
}

// Trace says which replicas answered a GetTraced, as the library's JSON
// (include/kv/kv.h, kv_get_traced): {"required": R, "replicas": [...]};
// the list is empty outside a cluster.
type Trace struct {
	Required int            `json:"required"`
	Replicas []TraceReplica `json:"replicas"`
}

// TraceReplica is one replica's answer in a Trace.
type TraceReplica struct {
	NodeID   string `json:"nodeId"`
	Status   string `json:"status"`
	Version  uint64 `json:"version"`
	Siblings int    `json:"siblings"`
	Repaired bool   `json:"repaired"`
}

// GetTraced is Get that also says which replicas answered what. The trace
// is returned whatever the outcome of the read (nil only when out of memory).
func (db *DB) GetTraced(ctx context.Context, key []byte, opts ...Option) (*Value, *Trace, error) {
	return db.get(ctx, "get traced", key, opts, true)
}

func (db *DB) get(ctx context.Context, op string, key []byte, opts []Option, traced bool) (*Value, *Trace, error) {
	o, err := parseOpts(op, opts, false, false)
	if err != nil {
		return nil, nil, err
	}
	var v *Value
	var trace *Trace
	err = db.run(ctx, op, false, func(p *C.kv) error {
		res := C.gokv_get(p, ptr(key), C.size_t(len(key)), b2i(o.set), o.level(),
			C.uint(o.r), b2i(traced))
		if res.trace != nil {
			trace = new(Trace)
			if jerr := json.Unmarshal([]byte(takeString(res.trace)), trace); jerr != nil {
				trace = nil
			}
		}
		if res.rc != 0 {
			return newError(op, res.rc, res.detail)
		}
		v = copyValue(&res, db.kind != Embedded)
		C.kv_value_free(res.value)
		return nil
	})
	if abandoned(err) {
		return nil, nil, err // the call may still be writing trace
	}
	if err != nil {
		return nil, trace, err
	}
	return v, trace, nil
}

// abandoned reports whether run gave up waiting for its call when the
// context ended: the call goes on in the background and may still write
// what its closure captured, so none of that may be read.
func abandoned(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.cause != nil
}

// Put stores value under key, replacing any previous value, and returns the
// new version. Options: TTL(d), a Consistency level or W(n),
// CausalContext(b), HomeOnly. Errors: ErrInvalid, ErrTooBig,
// ErrUnavailable (not applied), ErrUnknownOutcome (may have applied),
// ErrTimeout, ErrClosed.
func (db *DB) Put(ctx context.Context, key, value []byte, opts ...Option) (uint64, error) {
	o, err := parseOpts("put", opts, true, true)
	if err != nil {
		return 0, err
	}
	var ver uint64
	err = db.run(ctx, "put", true, func(p *C.kv) error {
		res := C.gokv_put(p, ptr(key), C.size_t(len(key)), ptr(value), C.size_t(len(value)),
			b2i(o.set), C.uint64_t(o.ttl), o.level(), C.uint(o.w), ptr(o.causal),
			C.size_t(len(o.causal)), b2i(o.homeOnly))
		if res.rc != 0 {
			return newError("put", res.rc, res.detail)
		}
		ver = uint64(res.version)
		return nil
	})
	return ver, err
}

// Delete deletes key, leaving a tombstone, and returns the tombstone's
// version. When there was no live value nothing is written and the error is
// ErrNotFound (a cluster always writes the tombstone). Options as Put's
// (but TTL).
func (db *DB) Delete(ctx context.Context, key []byte, opts ...Option) (uint64, error) {
	o, err := parseOpts("delete", opts, true, false)
	if err != nil {
		return 0, err
	}
	var ver uint64
	err = db.run(ctx, "delete", true, func(p *C.kv) error {
		res := C.gokv_delete(p, ptr(key), C.size_t(len(key)), b2i(o.set), o.level(),
			C.uint(o.w), ptr(o.causal), C.size_t(len(o.causal)), b2i(o.homeOnly))
		if res.rc != 0 {
			return newError("delete", res.rc, res.detail)
		}
		ver = uint64(res.version)
		return nil
	})
	return ver, err
}

// CAS stores value under key only if the key's current version is expected
// (0: only if the key is absent, deleted or expired), and returns the new
// version. Otherwise the error is ErrConflict, an *Error whose Version is
// the current version (0 when absent). In a cluster CAS runs at Serial
// unless an option says otherwise. Options as Put's.
func (db *DB) CAS(ctx context.Context, key []byte, expected uint64, value []byte, opts ...Option) (uint64, error) {
	o, err := parseOpts("cas", opts, true, true)
	if err != nil {
		return 0, err
	}
	var ver uint64
	err = db.run(ctx, "cas", true, func(p *C.kv) error {
		res := C.gokv_cas(p, ptr(key), C.size_t(len(key)), C.uint64_t(expected), ptr(value),
			C.size_t(len(value)), b2i(o.set), C.uint64_t(o.ttl), o.level(), C.uint(o.w),
			ptr(o.causal), C.size_t(len(o.causal)), b2i(o.homeOnly))
		if res.rc != 0 {
			e := newError("cas", res.rc, res.detail)
			if int(res.rc) == codeConflict {
				e.Version = uint64(res.version)
			}
			return e
		}
		ver = uint64(res.version)
		return nil
	})
	return ver, err
}

// BatchOp is the kind of a batch operation.
type BatchOp int

const (
	BatchPut    BatchOp = C.KV_BATCH_PUT
	BatchGet    BatchOp = C.KV_BATCH_GET
	BatchDelete BatchOp = C.KV_BATCH_DELETE
)

type batchOp struct {
	op         BatchOp
	key, value []byte
	ttl        time.Duration
}

// Batch is a list of operations to run with DB.Batch. Keys and values are
// copied when the batch runs: do not change them before. A Batch is not
// safe for concurrent use; it may be run again.
type Batch struct{ ops []batchOp }

// Put appends a put; ttl 0 means no expiry.
func (b *Batch) Put(key, value []byte, ttl time.Duration) *Batch {
	b.ops = append(b.ops, batchOp{BatchPut, key, value, ttl})
	return b
}

// Get appends a get.
func (b *Batch) Get(key []byte) *Batch {
	b.ops = append(b.ops, batchOp{op: BatchGet, key: key})
	return b
}

// Delete appends a delete.
func (b *Batch) Delete(key []byte) *Batch {
	b.ops = append(b.ops, batchOp{op: BatchDelete, key: key})
	return b
}

// Len returns the number of operations.
func (b *Batch) Len() int { return len(b.ops) }

// BatchResult is the outcome of one batch operation.
type BatchResult struct {
	Op      BatchOp
	Version uint64 // the new version (put, delete) or the read one (get)
	Value   *Value // a get's value
	// Err is ErrNotFound (get or delete of an absent key) or, in a cluster,
	// the operation's own failure; nil on success.
	Err error
}

// Batch runs every operation of b and returns one result per operation, in
// order. On an embedded handle the batch is atomic and each operation sees
// the ones before it; in a cluster each stands alone. When the batch as a
// whole is refused (an empty batch, an invalid or oversize operation)
// nothing is applied and the error's Index names the operation at fault
// when the library says which. Options: a Consistency level (reads and
// writes), R(n), W(n).
func (db *DB) Batch(ctx context.Context, b *Batch, opts ...Option) ([]BatchResult, error) {
	const op = "batch"
	var o callOpts
	for _, x := range opts {
		if x == nil {
			continue
		}
		if err := x.apply(&o); err != nil {
			e := err.(*Error)
			e.Op = op
			return nil, e
		}
	}
	if o.hasTTL || o.causal != nil || o.homeOnly {
		return nil, invalid(op, "a batch takes a consistency level, R or W; TTLs go with each Put")
	}
	for i, x := range b.ops {
		if x.op == BatchPut && x.ttl < 0 {
			return nil, &Error{Op: op, Code: codeInvalid, Index: i, Detail: "negative TTL"}
		}
	}
	wcons, rcons := C.int(o.cons), C.int(o.cons)
	useW, useR := o.cons != Default || o.w != 0, o.cons != Default || o.r != 0
	if o.w != 0 {
		wcons = C.KV_CONSISTENCY_EXPLICIT
	}
	if o.r != 0 {
		rcons = C.KV_CONSISTENCY_EXPLICIT
	}
	var results []BatchResult
	err := db.run(ctx, op, true, func(p *C.kv) error {
		var cb *C.kv_batch
		if rc := C.kv_batch_new(&cb); rc != 0 {
			return newError(op, rc, nil)
		}
		defer C.kv_batch_free(cb)
		for i, x := range b.ops {
			ttl := uint64((x.ttl + time.Second - 1) / time.Second)
			res := C.gokv_batch_add(cb, C.int(x.op), ptr(x.key), C.size_t(len(x.key)),
				ptr(x.value), C.size_t(len(x.value)), C.uint64_t(ttl))
			if res.rc != 0 {
				e := newError(op, res.rc, res.detail)
				e.Index = i
				return e
			}
		}
		res := C.gokv_batch_execute(p, cb, b2i(useW), wcons, C.uint(o.w), b2i(useR), rcons, C.uint(o.r))
		if res.rc != 0 {
			e := newError(op, res.rc, res.detail)
			for i := range b.ops {
				r := C.gokv_batch_result(cb, C.size_t(i))
				if int(r.rc) == codeTooBig || int(r.rc) == codeInvalid {
					e.Index = i
					break
				}
			}
			return e
		}
		results = make([]BatchResult, len(b.ops))
		for i, x := range b.ops {
			r := C.gokv_batch_result(cb, C.size_t(i))
			results[i] = BatchResult{Op: x.op, Version: uint64(r.version)}
			switch {
			case r.rc == 0 && r.value != nil:
				results[i].Value = copyValue(&r, db.kind != Embedded)
			case r.rc != 0:
				e := &Error{Op: op, Code: int(r.rc), Index: i}
				results[i].Err = e
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return results, nil
}

func (db *DB) simple(ctx context.Context, op string, which C.int) (string, error) {
	var out string
	err := db.run(ctx, op, false, func(p *C.kv) error {
		res := C.gokv_simple(p, which)
		if res.trace != nil {
			out = takeString(res.trace)
		}
		if res.rc != 0 {
			return newError(op, res.rc, res.detail)
		}
		return nil
	})
	if abandoned(err) {
		return "", err // the call may still be writing out
	}
	return out, err
}

// Ping checks that the handle can serve: a round trip to a node on a
// client; nothing to do on embedded and node handles. Errors: ErrUnavailable,
// ErrTimeout, ErrClosed.
func (db *DB) Ping(ctx context.Context) error {
	_, err := db.simple(ctx, "ping", 0)
	return err
}

// Compact compacts the store now (drops expired values and tombstones past
// their grace period). Runs in the calling goroutine and may take long.
// Errors: ErrNotSupported on a client.
func (db *DB) Compact() error {
	_, err := db.simple(context.Background(), "compact", 1)
	return err
}

// Description is the cluster as a node sees it (kv_cluster_describe; the
// fields are documented in docs/HTTP.md, GET /v1/cluster). The common fields
// are typed; Raw holds the whole document as the library gave it, for the
// rest (topology, hotKeys, latency, peerLatency, stream, antiEntropy).
type Description struct {
	NodeID            string   `json:"nodeId"`
	Replicas          int      `json:"replicas"`          // replicas of a key in this cluster now
	ReplicationFactor int      `json:"replicationFactor"` // the configured N
	VNodes            int      `json:"vnodes"`
	Complete          bool     `json:"complete"`
	Members           []Member `json:"members"`
	// Limits are the store's limits in bytes.
	Limits struct {
		MaxKeySize   int64 `json:"maxKeySize"`
		MaxValueSize int64 `json:"maxValueSize"`
	} `json:"limits"`
	// Storage is this node's own store (the kv_store_* metrics); nil when
	// the node did not give it (a client's description of a node that
	// does not).
	Storage *Storage `json:"storage"`
	// Failures is what this node knows of failures; nil when not given.
	Failures *Failures `json:"failures"`
	// Raw is the whole JSON document.
	Raw json.RawMessage `json:"-"`
}

// Member is one member of a Description.
type Member struct {
	NodeID       *string  `json:"nodeId"` // nil while unknown
	Address      string   `json:"address"`
	HTTPAddress  *string  `json:"httpAddress"`
	PrimaryShare *float64 `json:"primaryShare"`
	ReplicaShare *float64 `json:"replicaShare"`
	// State is the member's state in the topology (normal, joining,
	// leaving, replacing, left, none); "" outside a cluster.
	State string `json:"state"`
}

// Storage is a node's store as Description gives it.
type Storage struct {
	EstimatedKeys          uint64 `json:"estimatedKeys"`
	LiveSSTBytes           uint64 `json:"liveSstBytes"`
	SSTBytes               uint64 `json:"sstBytes"`
	CorruptRecordsRepaired uint64 `json:"corruptRecordsRepaired"`
	MemtableBytes          uint64 `json:"memtableBytes"`
	WALBytes               uint64 `json:"walBytes"`
	PendingCompactionBytes uint64 `json:"pendingCompactionBytes"`
	RunningCompactions     uint64 `json:"runningCompactions"`
	RunningFlushes         uint64 `json:"runningFlushes"`
	BlockCache             struct {
		Bytes         uint64 `json:"bytes"`
		CapacityBytes uint64 `json:"capacityBytes"`
		Hits          uint64 `json:"hits"`
		Misses        uint64 `json:"misses"`
	} `json:"blockCache"`
}

// Failures is what a node knows of failures, as Description gives it.
type Failures struct {
	MembersUp            int     `json:"membersUp"`
	MembersDown          int     `json:"membersDown"`
	Suspicions           uint64  `json:"suspicions"`
	HintsPending         uint64  `json:"hintsPending"`
	HintOldestAgeSeconds float64 `json:"hintOldestAgeSeconds"`
	HintsReplayed        uint64  `json:"hintsReplayed"`
	HintsDropped         uint64  `json:"hintsDropped"`
	SloppyWrites         uint64  `json:"sloppyWrites"`
	ReadRepairs          uint64  `json:"readRepairs"`
}

// Describe returns the cluster as a node sees it. Errors: ErrNotSupported on
// an embedded handle; ErrUnavailable, ErrTimeout on a client.
func (db *DB) Describe(ctx context.Context) (*Description, error) {
	s, err := db.simple(ctx, "describe", 2)
	if err != nil {
		return nil, err
	}
	d := &Description{Raw: json.RawMessage(s)}
	if err := json.Unmarshal(d.Raw, d); err != nil {
		return nil, &Error{Op: "describe", Code: codeInvalid, Detail: err.Error(), Index: -1}
	}
	return d, nil
}

func itoa(i int) string {
	var b [24]byte
	n := len(b)
	neg := i < 0
	if neg {
		i = -i
	}
	for {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
		if i == 0 {
			break
		}
	}
	if neg {
		n--
		b[n] = '-'
	}
	return string(b[n:])
}
