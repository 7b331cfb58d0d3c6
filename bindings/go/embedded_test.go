package kv

import (
	"bytes"
	"crypto/rand"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPutGetVersions(t *testing.T) {
	db := openT(t, nil)
	eq(t, db.Kind(), Embedded)
	_, err := db.Get(bg, b("k"))
	e := mustIs(t, err, ErrNotFound)
	eq(t, e.Code, -1)
	eq(t, ok(db.Put(bg, b("k"), b("v1"))), uint64(1))
	eq(t, ok(db.Put(bg, b("k"), b("v2"))), uint64(2))
	v := ok(db.Get(bg, b("k")))
	eq(t, string(v.Data), "v2")
	eq(t, v.Version, uint64(2))
	if !v.Expiry.IsZero() || v.Siblings != nil || len(v.Context) != 0 {
		t.Fatalf("unexpected metadata %+v", v)
	}
}

func TestBinaryKeysAndValues(t *testing.T) {
	db := openT(t, nil)
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	keys := [][]byte{{0}, {0, 0}, b("a\x00b"), all, bytes.Repeat([]byte{0xff}, 1024)}
	for i, k := range keys {
		ok(db.Put(bg, k, append([]byte{byte(i), 0}, k...)))
	}
	for i, k := range keys {
		v := ok(db.Get(bg, k))
		if !bytes.Equal(v.Data, append([]byte{byte(i), 0}, k...)) {
			t.Fatalf("key %d: %q", i, v.Data)
		}
	}
	ok(db.Put(bg, b("empty"), nil))
	v := ok(db.Get(bg, b("empty"))) // an empty value is not a missing key
	if v.Data == nil || len(v.Data) != 0 || v.Version != 1 {
		t.Fatalf("%+v", v)
	}
	big := make([]byte, 1<<20) // the default limit, exactly
	rand.Read(big)
	ok(db.Put(bg, b("big"), big))
	if !bytes.Equal(ok(db.Get(bg, b("big"))).Data, big) {
		t.Fatal("big value differs")
	}
}

func TestDelete(t *testing.T) {
	db := openT(t, nil)
	_, err := db.Delete(bg, b("k"))
	mustIs(t, err, ErrNotFound)
	ok(db.Put(bg, b("k"), b("v")))
	eq(t, ok(db.Delete(bg, b("k"))), uint64(2)) // the tombstone takes a version
	_, err = db.Get(bg, b("k"))
	mustIs(t, err, ErrNotFound)
	_, err = db.Delete(bg, b("k"))
	mustIs(t, err, ErrNotFound)
	eq(t, ok(db.Put(bg, b("k"), b("again"))), uint64(3))
}

func TestCAS(t *testing.T) {
	db := openT(t, nil)
	eq(t, ok(db.CAS(bg, b("c"), 0, b("first"))), uint64(1))
	_, err := db.CAS(bg, b("c"), 0, b("again"))
	e := mustIs(t, err, ErrConflict)
	eq(t, e.Version, uint64(1))
	eq(t, e.Code, -2)
	eq(t, ok(db.CAS(bg, b("c"), 1, b("second"))), uint64(2))
	_, err = db.CAS(bg, b("c"), 1, b("stale"))
	eq(t, mustIs(t, err, ErrConflict).Version, uint64(2))
	if !strings.Contains(err.Error(), "conflict") {
		t.Fatal(err)
	}
	ok(db.Delete(bg, b("c")))
	_, err = db.CAS(bg, b("c"), 2, b("x"))
	eq(t, mustIs(t, err, ErrConflict).Version, uint64(0)) // absent
	eq(t, ok(db.CAS(bg, b("c"), 0, b("back"))), uint64(4))
	eq(t, string(ok(db.Get(bg, b("c"))).Data), "back")
}

func TestTTL(t *testing.T) {
	db := openT(t, nil)
	before := time.Now()
	ok(db.Put(bg, b("t"), b("short"), TTL(time.Second)))
	ok(db.Put(bg, b("long"), b("x"), TTL(time.Hour)))
	ok(db.CAS(bg, b("c"), 0, b("x"), TTL(time.Second)))
	v := ok(db.Get(bg, b("long")))
	if v.Expiry.Before(before.Add(50 * time.Minute)) {
		t.Fatalf("expiry %v", v.Expiry)
	}
	notFound := func(k string) func() error {
		return func() error {
			if _, err := db.Get(bg, b(k)); !errors.Is(err, ErrNotFound) {
				return errors.New("still there")
			}
			return nil
		}
	}
	waitFor(t, "ttl to expire", notFound("t"))
	waitFor(t, "cas ttl to expire", notFound("c"))
	eq(t, string(ok(db.Get(bg, b("long"))).Data), "x")
	ok(db.Put(bg, b("f"), b("x"), TTL(200*time.Millisecond))) // rounds up
	if ok(db.Get(bg, b("f"))).Expiry.IsZero() {
		t.Fatal("no expiry")
	}
	if err := db.Compact(); err != nil {
		t.Fatal(err)
	}
}

func TestBatch(t *testing.T) {
	db := openT(t, nil)
	ok(db.Put(bg, b("a"), b("old")))
	var bt Batch
	bt.Put(b("a"), b("new"), 0).Get(b("a")).Delete(b("a")).Get(b("a")).Delete(b("none")).
		Put(b("b"), b("x"), time.Minute).Get(b("b"))
	res := ok(db.Batch(bg, &bt))
	eq(t, len(res), 7)
	eq(t, res[0].Version, uint64(2))
	eq(t, string(res[1].Value.Data), "new")
	eq(t, res[1].Value.Version, uint64(2))
	eq(t, res[2].Version, uint64(3))
	mustIs(t, res[3].Err, ErrNotFound)
	mustIs(t, res[4].Err, ErrNotFound)
	eq(t, res[5].Version, uint64(1))
	eq(t, string(res[6].Value.Data), "x")
	if res[6].Value.Expiry.IsZero() || res[0].Err != nil {
		t.Fatalf("%+v", res)
	}
	eq(t, res[6].Op, BatchGet)
}

func TestBatchIsAtomic(t *testing.T) {
	db := openT(t, &OpenOptions{MaxValueSize: 10})
	_, err := db.Batch(bg, new(Batch).Put(b("x"), b("ok"), 0).Put(b("y"), bytes.Repeat(b("z"), 11), 0))
	eq(t, mustIs(t, err, ErrTooBig).Index, 1)
	_, err = db.Get(bg, b("x")) // nothing applied
	mustIs(t, err, ErrNotFound)
	_, err = db.Batch(bg, new(Batch))
	mustIs(t, err, ErrInvalid)
}

func TestOtherCalls(t *testing.T) {
	db := openT(t, nil)
	if err := db.Ping(bg); err != nil {
		t.Fatal(err)
	}
	if err := db.Compact(); err != nil {
		t.Fatal(err)
	}
	_, err := db.Describe(bg)
	mustIs(t, err, ErrNotSupported)
	_, tr, err := db.GetTraced(bg, b("nope"))
	mustIs(t, err, ErrNotFound)
	if tr == nil || len(tr.Replicas) != 0 {
		t.Fatalf("trace %+v", tr)
	}
	ok(db.Put(bg, b("k"), b("v")))
	v, _, err := db.GetTraced(bg, b("k"), One)
	if err != nil || string(v.Data) != "v" {
		t.Fatal(v, err)
	}
	for _, level := range []Consistency{Default, One, Quorum, All, Serial} {
		eq(t, string(ok(db.Get(bg, b("k"), level)).Data), "v")
		ok(db.Put(bg, b("k"), b("v"), level))
	}
	ok(db.Put(bg, b("k"), b("v"), W(1)))
	eq(t, string(ok(db.Get(bg, b("k"), R(1))).Data), "v")
	eq(t, Serial.String(), "serial")
	eq(t, int(Serial), 5)
}

func TestClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c")
	db := ok(Open(path, nil))
	ok(db.Put(bg, b("k"), b("durable")))
	if db.Closed() {
		t.Fatal("closed")
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil { // idempotent
		t.Fatal(err)
	}
	if !db.Closed() {
		t.Fatal("not closed")
	}
	calls := []func() error{
		func() error { _, err := db.Get(bg, b("k")); return err },
		func() error { _, err := db.Put(bg, b("k"), b("v")); return err },
		func() error { _, err := db.Delete(bg, b("k")); return err },
		func() error { _, err := db.CAS(bg, b("k"), 1, b("v")); return err },
		func() error { _, err := db.Batch(bg, new(Batch).Get(b("k"))); return err },
		func() error { return db.Ping(bg) },
		db.Compact,
		func() error { _, _, err := db.GetTraced(bg, b("k")); return err },
		func() error { _, err := db.Describe(bg); return err },
	}
	for _, call := range calls {
		mustIs(t, call(), ErrClosed)
	}
	again := ok(Open(path, nil))
	defer again.Close()
	eq(t, string(ok(again.Get(bg, b("k"))).Data), "durable")
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	db := ok(Open(filepath.Join(dir, "busy"), &OpenOptions{Sync: SyncNone}))
	defer db.Close()
	_, err := Open(filepath.Join(dir, "busy"), nil)
	if e := mustIs(t, err, ErrBusy); e.Detail == "" {
		t.Fatal("no detail")
	}
	_, err = Open(filepath.Join(dir, "missing"), &OpenOptions{ErrorIfMissing: true})
	mustIs(t, err, ErrInvalid)
	_, err = Open(filepath.Join(dir, "x"), &OpenOptions{MaxKeySize: 70000})
	mustIs(t, err, ErrInvalid)
	_, err = Open(filepath.Join(dir, "x"), &OpenOptions{Sync: 7})
	mustIs(t, err, ErrInvalid)
	_, err = Open("", nil)
	mustIs(t, err, ErrInvalid)
	_, err = Open("a\x00b", nil)
	mustIs(t, err, ErrInvalid)
}

func TestOptions(t *testing.T) {
	for _, sync := range []SyncPolicy{SyncAlways, SyncPeriodic, SyncNone} {
		db := ok(Open(filepath.Join(t.TempDir(), "db"), &OpenOptions{Sync: sync,
			SyncInterval: 50 * time.Millisecond, BlockCacheBytes: 8 << 20, TombstoneGrace: GraceNone,
			RowCacheBytes: RowCacheNone}))
		ok(db.Put(bg, b("k"), b("v")))
		ok(db.Delete(bg, b("k")))
		if err := db.Compact(); err != nil {
			t.Fatal(err)
		}
		// No grace: the tombstone is gone, versions restart.
		eq(t, ok(db.Put(bg, b("k"), b("v"))), uint64(1))
		db.Close()
	}
}

func TestModule(t *testing.T) {
	if strings.Count(Version(), ".") != 2 {
		t.Fatal(Version())
	}
	if !strings.Contains(StatusText(-1), "not found") || StatusText(12345) != "unknown error code" {
		t.Fatal(StatusText(-1))
	}
	if !Retryable(&Error{Code: codeUnavailable}) || !Retryable(&Error{Code: codeTimeout}) ||
		Retryable(&Error{Code: codeUnknownOutcome}) {
		t.Fatal("Retryable")
	}
}
