package kv

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// calls runs the data calls, the same on every kind of handle.
func calls(t *testing.T, db *DB) {
	t.Helper()
	_, err := db.Get(bg, b("k"))
	mustIs(t, err, ErrNotFound)
	eq(t, ok(db.Put(bg, b("k"), b("v1"))), uint64(1))
	eq(t, ok(db.Put(bg, b("k"), b("v2"), TTL(time.Hour), All)), uint64(2))
	v := ok(db.Get(bg, b("k"), One))
	eq(t, string(v.Data), "v2")
	eq(t, v.Version, uint64(2))
	if v.Expiry.IsZero() {
		t.Fatal("no expiry")
	}
	eq(t, ok(db.CAS(bg, b("k"), 2, b("v3"))), uint64(3))
	_, err = db.CAS(bg, b("k"), 2, b("lost"))
	eq(t, mustIs(t, err, ErrConflict).Version, uint64(3))
	eq(t, ok(db.Delete(bg, b("k"))), uint64(4))
	_, err = db.Get(bg, b("k"))
	mustIs(t, err, ErrNotFound)
	eq(t, ok(db.CAS(bg, b("k"), 0, b("\x00bin\xff"))), uint64(5))
	eq(t, string(ok(db.Get(bg, b("k"))).Data), "\x00bin\xff")
	res := ok(db.Batch(bg, new(Batch).Put(b("b1"), b("x"), 0).Get(b("k")).Delete(b("b1")).Get(b("b1"))))
	eq(t, res[0].Version, uint64(1))
	eq(t, string(res[1].Value.Data), "\x00bin\xff")
	eq(t, res[2].Version, uint64(2))
	mustIs(t, res[3].Err, ErrNotFound)
	v, tr, err := db.GetTraced(bg, b("k"))
	if err != nil || string(v.Data) != "\x00bin\xff" || tr == nil {
		t.Fatal(v, tr, err)
	}
	if err := db.Ping(bg); err != nil {
		t.Fatal(err)
	}
	// A context with a deadline, not reached.
	ctx, cancel := context.WithTimeout(bg, time.Minute)
	defer cancel()
	eq(t, string(ok(db.Get(ctx, b("k"))).Data), "\x00bin\xff")
	// A context already done: nothing is sent.
	done, cancel2 := context.WithCancel(bg)
	cancel2()
	_, err = db.Put(done, b("k"), b("no"))
	mustIs(t, err, context.Canceled)
	eq(t, string(ok(db.Get(bg, b("k"))).Data), "\x00bin\xff")
}

func TestNodeHandle(t *testing.T) {
	node := nodeT(t, NodeOptions{HTTP: "127.0.0.1:0"})
	eq(t, node.Kind(), NodeKind)
	bin, http, err := node.Ports()
	if err != nil || bin == 0 || http == 0 {
		t.Fatal(bin, http, err)
	}
	eq(t, node.Address(), "127.0.0.1:"+itoa(bin))
	eq(t, node.HTTPAddress(), "127.0.0.1:"+itoa(http))
	d := ok(node.Describe(bg))
	eq(t, d.NodeID, "n1")
	eq(t, d.Limits.MaxKeySize, int64(1024))
	eq(t, d.Limits.MaxValueSize, int64(1<<20))
	if d.Storage == nil || d.Storage.BlockCache.CapacityBytes == 0 || d.Failures == nil {
		t.Fatalf("storage %+v, failures %+v", d.Storage, d.Failures)
	}
	if !strings.Contains(string(d.Raw), `"peerLatency"`) {
		t.Fatalf("the whole document: %s", d.Raw)
	}
	calls(t, node.DB)
	if err := node.Compact(); err != nil {
		t.Fatal(err)
	}
}

func TestClientOfANode(t *testing.T) {
	node := nodeT(t, NodeOptions{})
	eq(t, node.HTTPAddress(), "")
	client := dialT(t, []string{node.Address()}, nil)
	eq(t, client.Kind(), Client)
	calls(t, client)
	ok(node.Put(bg, b("from-node"), b("1")))
	eq(t, string(ok(client.Get(bg, b("from-node"))).Data), "1")
	ok(client.Put(bg, b("from-client"), b("2")))
	eq(t, string(ok(node.Get(bg, b("from-client"))).Data), "2")
	eq(t, *ok(client.Describe(bg)).Members[0].NodeID, "n1")
	mustIs(t, client.Compact(), ErrNotSupported)
}

func TestClosingTheNodeUnderAClient(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "n1")
	node := ok(StartNode(&NodeOptions{DataDir: dir, NodeID: "n1", Store: OpenOptions{Sync: SyncNone}}))
	addr := node.Address()
	client := dialT(t, []string{addr}, &ClientOptions{ConnectTimeout: 500 * time.Millisecond,
		RequestTimeout: time.Second})
	ok(client.Put(bg, b("k"), b("v")))
	node.Close()
	_, err := node.Get(bg, b("k"))
	mustIs(t, err, ErrClosed)
	eq(t, node.Address(), "")
	_, err = client.Get(bg, b("k"))
	if !Retryable(err) {
		t.Fatalf("want a retryable error, got %v", err)
	}
	// It comes back on the same port; the client reconnects by itself.
	var again *Node
	waitFor(t, "the port to be free again", func() error {
		again, err = StartNode(&NodeOptions{DataDir: dir, NodeID: "n1", Listen: addr,
			Store: OpenOptions{Sync: SyncNone}})
		return err
	})
	defer again.Close()
	waitFor(t, "a reconnection", func() error { _, err := client.Get(bg, b("k")); return err })
}

func TestUnavailable(t *testing.T) {
	client := dialT(t, []string{freePort(t)}, &ClientOptions{ConnectTimeout: 500 * time.Millisecond,
		RequestTimeout: 500 * time.Millisecond})
	for _, call := range []func() error{
		func() error { return client.Ping(bg) },
		func() error { _, err := client.Get(bg, b("k")); return err },
		func() error { _, err := client.Put(bg, b("k"), b("v")); return err },
		func() error { _, err := client.CAS(bg, b("k"), 0, b("v")); return err },
		func() error { _, err := client.Delete(bg, b("k")); return err },
	} {
		err := call()
		mustIs(t, err, ErrUnavailable)
		if !Retryable(err) || !strings.Contains(err.Error(), "reach") {
			t.Fatal(err)
		}
	}
}

// silentServer accepts connections and never answers.
func silentServer(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		for _, c := range held {
			c.Close()
		}
	})
	return l.Addr().String()
}

// readFrame reads one whole frame (24-byte header, then the body length it
// gives) from c.
func readFrame(c net.Conn) ([]byte, error) {
	buf := make([]byte, 0, 256)
	tmp := make([]byte, 65536)
	for len(buf) < 24 || len(buf) < 24+int(binary.BigEndian.Uint32(buf[16:20])) {
		n, err := c.Read(tmp)
		if err != nil {
			return nil, err
		}
		buf = append(buf, tmp[:n]...)
	}
	return buf, nil
}

// swallowingProxy passes each connection's first exchange (the client's probe
// of a new connection) to upstream and back, then reads and drops
// everything: requests are sent and never answered.
func swallowingProxy(t *testing.T, upstream string) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var held []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
			go func(c net.Conn) {
				up, err := net.DialTimeout("tcp", upstream, 5*time.Second)
				if err != nil {
					return
				}
				defer up.Close()
				if f, err := readFrame(c); err == nil {
					if _, err := up.Write(f); err == nil {
						if a, err := readFrame(up); err == nil {
							c.Write(a)
						}
					}
				}
				io.Copy(io.Discard, c)
			}(c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	})
	return l.Addr().String()
}

func TestTimedOutAndUnknownOutcome(t *testing.T) {
	node := nodeT(t, NodeOptions{Listen: "127.0.0.1:0"})
	client := dialT(t, []string{swallowingProxy(t, node.Address())}, &ClientOptions{
		ConnectTimeout: 300 * time.Millisecond, RequestTimeout: 300 * time.Millisecond})
	_, err := client.Get(bg, b("k")) // a read: nothing changed
	mustIs(t, err, ErrTimeout)
	for _, write := range []func() error{
		func() error { _, err := client.Put(bg, b("k"), b("v")); return err },
		func() error { _, err := client.CAS(bg, b("k"), 0, b("v")); return err },
		func() error { _, err := client.Delete(bg, b("k")); return err },
	} {
		err := write()
		mustIs(t, err, ErrUnknownOutcome) // may have applied
		if Retryable(err) {
			t.Fatal(err)
		}
	}
}

func TestContextDeadlineAbandonsACall(t *testing.T) {
	// The client waits up to 3 s for the silent server; the context ends
	// first, and the call returns with the context's error.
	client := dialT(t, []string{silentServer(t)}, &ClientOptions{RequestTimeout: 3 * time.Second})
	ctx, cancel := context.WithTimeout(bg, 100*time.Millisecond)
	defer cancel()
	_, err := client.Get(ctx, b("k"))
	mustIs(t, err, context.DeadlineExceeded)
	mustIs(t, err, ErrTimeout)
	ctx2, cancel2 := context.WithTimeout(bg, 100*time.Millisecond)
	defer cancel2()
	_, err = client.Put(ctx2, b("k"), b("v"))
	mustIs(t, err, context.DeadlineExceeded)
	mustIs(t, err, ErrUnknownOutcome)
	// Close waits for the abandoned C calls (bounded by RequestTimeout).
	go client.Close()
}

func TestSiblingsAndContext(t *testing.T) {
	addr := freePort(t)
	// A cluster of one (seeds: itself) keeps causal contexts and siblings.
	nodeT(t, NodeOptions{Listen: addr, Seeds: []string{addr}})
	sib := dialT(t, []string{addr}, &ClientOptions{Policy: Siblings, RequestTimeout: 5 * time.Second})
	waitFor(t, "the cluster of one", func() error { _, err := sib.Put(bg, b("k"), b("one")); return err })
	ok(sib.Put(bg, b("k"), b("two"))) // no context: a concurrent sibling
	v := ok(sib.Get(bg, b("k")))
	if len(v.Siblings) != 2 || len(v.Context) == 0 {
		t.Fatalf("%+v", v)
	}
	got := map[string]bool{string(v.Siblings[0]): true, string(v.Siblings[1]): true}
	if !got["one"] || !got["two"] || !got[string(v.Data)] {
		t.Fatalf("%q", v.Siblings)
	}
	ok(sib.Put(bg, b("k"), b("resolved"), CausalContext(v.Context))) // supersedes both
	v = ok(sib.Get(bg, b("k")))
	if v.Siblings != nil || string(v.Data) != "resolved" {
		t.Fatalf("%+v", v)
	}
	ok(sib.Delete(bg, b("k"), CausalContext(v.Context)))
	_, err := sib.Get(bg, b("k"))
	mustIs(t, err, ErrNotFound)
}

func TestClientTokens(t *testing.T) {
	node := nodeT(t, NodeOptions{ClientTokens: []string{"a-token-of-16-bytes"}})
	_, err := dialT(t, []string{node.Address()}, nil).Put(bg, b("k"), b("v"))
	mustIs(t, err, ErrPermission)
	_, err = dialT(t, []string{node.Address()}, &ClientOptions{AuthToken: "wrong"}).Get(bg, b("k"))
	mustIs(t, err, ErrPermission)
	eq(t, ok(dialT(t, []string{node.Address()}, &ClientOptions{AuthToken: "a-token-of-16-bytes"}).
		Put(bg, b("k"), b("v"))), uint64(1))
}

func TestNodeErrors(t *testing.T) {
	dir := t.TempDir()
	node := nodeT(t, NodeOptions{DataDir: filepath.Join(dir, "n1")})
	try := func(o NodeOptions) error {
		n, err := StartNode(&o)
		if err == nil {
			n.Close()
			return errors.New("started")
		}
		return err
	}
	mustIs(t, try(NodeOptions{DataDir: filepath.Join(dir, "n2"), NodeID: "n2", Listen: node.Address()}), ErrBusy)
	mustIs(t, try(NodeOptions{DataDir: filepath.Join(dir, "n1"), NodeID: "n1"}), ErrBusy)
	mustIs(t, try(NodeOptions{DataDir: filepath.Join(dir, "n3"), NodeID: "bad id!"}), ErrInvalid)
	mustIs(t, try(NodeOptions{DataDir: filepath.Join(dir, "n3"), NodeID: "n3", Listen: "nonsense"}), ErrInvalid)
	mustIs(t, try(NodeOptions{DataDir: filepath.Join(dir, "n3"), NodeID: "n3", Listen: "0.0.0.0:0"}), ErrPermission)
	mustIs(t, try(NodeOptions{DataDir: filepath.Join(dir, "n3"), NodeID: "n3", Policy: 2}), ErrInvalid)
	mustIs(t, try(NodeOptions{NodeID: "n3"}), ErrInvalid)
}
