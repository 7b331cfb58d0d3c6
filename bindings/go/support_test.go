package kv

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

var bg = context.Background()

func b(s string) []byte { return []byte(s) }

func openT(t testing.TB, opts *OpenOptions) *DB {
	t.Helper()
	if opts == nil {
		opts = &OpenOptions{}
	}
	if opts.Sync == SyncAlways {
		opts.Sync = SyncNone
	}
	db, err := Open(filepath.Join(t.TempDir(), "db"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func nodeT(t testing.TB, opts NodeOptions) *Node {
	t.Helper()
	if opts.DataDir == "" {
		opts.DataDir = filepath.Join(t.TempDir(), "node")
	}
	if opts.NodeID == "" {
		opts.NodeID = "n1"
	}
	opts.Store.Sync = SyncNone
	n, err := StartNode(&opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func dialT(t testing.TB, eps []string, opts *ClientOptions) *DB {
	t.Helper()
	if opts == nil {
		opts = &ClientOptions{RequestTimeout: 5 * time.Second}
	}
	c, err := Dial(eps, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// freePort is a loopback port nothing listens on right now (another process
// may take it first: callers retry on ErrBusy).
func freePort(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return "127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// waitFor calls fn until it returns nil or the bound passes (then fails the
// test with the last error). No assertion on time.
func waitFor(t testing.TB, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func mustIs(t testing.TB, err, target error) *Error {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("want %v, got %v", target, err)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("not a *kv.Error: %T %v", err, err)
	}
	return e
}

// ok returns v, or panics with err (which fails the test with its stack);
// only from the test's own goroutine.
func ok[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func eq[T comparable](t testing.TB, got, want T) {
	t.Helper()
	if got != want {
		t.Fatalf("got %v, want %v", got, want)
	}
}
