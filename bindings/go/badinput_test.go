package kv

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestEmptyKey(t *testing.T) {
	db := openT(t, nil)
	calls := []func() error{
		func() error { _, err := db.Get(bg, nil); return err },
		func() error { _, err := db.Put(bg, []byte{}, b("v")); return err },
		func() error { _, err := db.Delete(bg, nil); return err },
		func() error { _, err := db.CAS(bg, nil, 0, b("v")); return err },
		func() error { _, err := db.Batch(bg, new(Batch).Get(nil)); return err },
	}
	for i, call := range calls {
		err := call()
		mustIs(t, err, ErrInvalid)
		if !strings.Contains(err.Error(), "empty") {
			t.Fatalf("call %d: %v", i, err)
		}
	}
}

func TestOversize(t *testing.T) {
	db := openT(t, nil)
	_, err := db.Put(bg, bytes.Repeat(b("k"), 1025), b("v"))
	mustIs(t, err, ErrTooBig)
	if !strings.Contains(err.Error(), "1025") {
		t.Fatal(err)
	}
	_, err = db.Get(bg, bytes.Repeat(b("k"), 1025))
	mustIs(t, err, ErrTooBig)
	huge := make([]byte, 1<<20+1)
	_, err = db.Put(bg, b("k"), huge)
	mustIs(t, err, ErrTooBig)
	_, err = db.CAS(bg, b("k"), 0, huge)
	mustIs(t, err, ErrTooBig)
	_, err = db.Batch(bg, new(Batch).Get(b("a")).Put(b("k"), huge, 0))
	eq(t, mustIs(t, err, ErrTooBig).Index, 1)
	var many Batch
	for i := 0; i < 10001; i++ {
		many.Get(b("k"))
	}
	_, err = db.Batch(bg, &many)
	mustIs(t, err, ErrTooBig)
	small := openT(t, &OpenOptions{MaxKeySize: 8, MaxValueSize: 16})
	_, err = small.Put(bg, b("123456789"), b("v"))
	mustIs(t, err, ErrTooBig)
	_, err = small.Put(bg, b("k"), bytes.Repeat(b("x"), 17))
	mustIs(t, err, ErrTooBig)
	ok(small.Put(bg, b("12345678"), bytes.Repeat(b("x"), 16)))
	eq(t, ok(db.Put(bg, b("k"), b("still serving"))), uint64(1))
}

func TestBadOptions(t *testing.T) {
	db := openT(t, nil)
	bad := [][]Option{
		{TTL(0)}, {TTL(-time.Second)}, {Consistency(7)}, {One, R(1)}, {R(0)}, {W(0)},
	}
	for i, opts := range bad {
		_, err := db.Put(bg, b("k"), b("v"), opts...)
		if i == 3 { // R on a write
			mustIs(t, err, ErrInvalid)
			continue
		}
		mustIs(t, err, ErrInvalid)
	}
	for _, opt := range []Option{TTL(time.Second), W(1), HomeOnly, CausalContext(b("c"))} {
		_, err := db.Get(bg, b("k"), opt)
		mustIs(t, err, ErrInvalid)
	}
	_, err := db.Delete(bg, b("k"), TTL(time.Second))
	mustIs(t, err, ErrInvalid)
	_, err = db.Batch(bg, new(Batch).Get(b("k")), TTL(time.Second))
	mustIs(t, err, ErrInvalid)
	_, err = db.Batch(bg, new(Batch).Put(b("k"), b("v"), -time.Second))
	mustIs(t, err, ErrInvalid)
	_, err = Dial(nil, nil)
	mustIs(t, err, ErrInvalid)
	_, err = Dial([]string{"127.0.0.1:1\x00"}, nil)
	mustIs(t, err, ErrInvalid)
	_, err = Dial([]string{"no-port"}, nil)
	mustIs(t, err, ErrInvalid)
	_, err = Dial([]string{"127.0.0.1:1"}, &ClientOptions{RequestTimeout: -1})
	mustIs(t, err, ErrInvalid)
	_, err = StartNode(nil)
	mustIs(t, err, ErrInvalid)
	eq(t, ok(db.Put(bg, b("k"), b("still serving"))), uint64(1))
}
