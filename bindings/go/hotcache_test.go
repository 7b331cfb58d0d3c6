package kv

// The client's cache of hot keys (ClientOptions.HotCacheStaleness,
// kv_client_options version 5) end to end against a node in this process,
// and the bad input of the new client options (MaxInflight,
// HotCacheStaleness, HotCacheEntries).
//
// The key is changed behind the cached client's back through the node's own
// handle: a read through the client then still returns the old value, which
// only a cache can do. The staleness bound is an hour (the most allowed), so
// no test can outrun it; nothing here waits for time to pass.

import (
	"errors"
	"math"
	"strconv"
	"testing"
	"time"
)

func cachedT(t *testing.T, node *Node, entries uint) *DB {
	t.Helper()
	return dialT(t, []string{node.Address()}, &ClientOptions{RequestTimeout: 5 * time.Second,
		HotCacheStaleness: MaxHotCacheStaleness, HotCacheEntries: entries})
}

func getS(t *testing.T, db *DB, key string, opts ...Option) string {
	t.Helper()
	v, err := db.Get(bg, b(key), opts...)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	return string(v.Data)
}

func TestHotCacheServesAReadWithinItsBound(t *testing.T) {
	node := nodeT(t, NodeOptions{})
	cached := cachedT(t, node, 0)
	ok(node.Put(bg, b("k"), b("a")))
	first := ok(cached.Get(bg, b("k")))
	eq(t, string(first.Data), "a")

	// Changed behind the client's back: the client's reads at the default
	// level, One and Quorum are answered from its cache.
	ok(node.Put(bg, b("k"), b("b")))
	eq(t, getS(t, node.DB, "k"), "b")
	again := ok(cached.Get(bg, b("k")))
	eq(t, string(again.Data), "a")
	eq(t, again.Version, first.Version)
	eq(t, getS(t, cached, "k", One), "a")
	eq(t, getS(t, cached, "k", Quorum), "a")

	// Reads at All and traced reads never use the cache.
	eq(t, getS(t, cached, "k", All), "b")
	v, _, err := cached.GetTraced(bg, b("k"))
	if err != nil {
		t.Fatal(err)
	}
	eq(t, string(v.Data), "b")
}

func TestHotCacheSerialBypasses(t *testing.T) {
	node := nodeT(t, NodeOptions{})
	cached := cachedT(t, node, 0)
	ok(node.Put(bg, b("k"), b("a")))
	eq(t, getS(t, cached, "k"), "a")
	ok(node.Put(bg, b("k"), b("b")))
	eq(t, getS(t, cached, "k"), "a")
	v, err := cached.Get(bg, b("k"), Serial)
	if errors.Is(err, ErrNotSupported) {
		t.Skip("SERIAL reads are not served by a node alone")
	}
	if err != nil {
		t.Fatal(err)
	}
	eq(t, string(v.Data), "b")
}

func TestHotCacheOwnWritesDropTheKey(t *testing.T) {
	node := nodeT(t, NodeOptions{})
	cached := cachedT(t, node, 0)
	ok(node.Put(bg, b("k"), b("a")))
	eq(t, getS(t, cached, "k"), "a")

	// Put through the cached client: its next read is the new value...
	ok(node.Put(bg, b("k"), b("b")))
	eq(t, getS(t, cached, "k"), "a")
	ok(cached.Put(bg, b("k"), b("c")))
	eq(t, getS(t, cached, "k"), "c")
	// ...which is cached in turn.
	ok(node.Put(bg, b("k"), b("d")))
	eq(t, getS(t, cached, "k"), "c")

	// CAS.
	ver := ok(node.Get(bg, b("k"))).Version
	ok(cached.CAS(bg, b("k"), ver, b("e")))
	eq(t, getS(t, cached, "k"), "e")

	// A batch that writes the key.
	ok(node.Put(bg, b("k"), b("f")))
	eq(t, getS(t, cached, "k"), "e")
	ok(cached.Batch(bg, new(Batch).Put(b("k"), b("g"), 0)))
	eq(t, getS(t, cached, "k"), "g")

	// Delete.
	ok(node.Put(bg, b("k"), b("h")))
	eq(t, getS(t, cached, "k"), "g")
	ok(cached.Delete(bg, b("k")))
	_, err := cached.Get(bg, b("k"))
	mustIs(t, err, ErrNotFound)
	_, err = node.Get(bg, b("k"))
	mustIs(t, err, ErrNotFound)
}

func TestHotCacheOffByDefault(t *testing.T) {
	node := nodeT(t, NodeOptions{})
	for i, opts := range []*ClientOptions{nil, {}, {HotCacheEntries: 10}, {MaxInflight: 8}} {
		plain := dialT(t, []string{node.Address()}, opts)
		ok(node.Put(bg, b("k"), b("a")))
		eq(t, getS(t, plain, "k"), "a")
		ok(node.Put(bg, b("k"), b("b")))
		if got := getS(t, plain, "k"); got != "b" {
			t.Fatalf("client %d (%+v): got %q, want \"b\"", i, opts, got)
		}
	}
}

func TestHotCacheEntriesBoundTheCache(t *testing.T) {
	node := nodeT(t, NodeOptions{})
	cached := cachedT(t, node, 1)
	ok(node.Put(bg, b("k1"), b("a")))
	ok(node.Put(bg, b("k2"), b("x")))
	eq(t, getS(t, cached, "k1"), "a")
	eq(t, getS(t, cached, "k2"), "x") // the one entry: k1 dropped
	ok(node.Put(bg, b("k1"), b("b")))
	ok(node.Put(bg, b("k2"), b("y")))
	eq(t, getS(t, cached, "k2"), "x") // still cached
	eq(t, getS(t, cached, "k1"), "b") // was dropped: asked the node
}

func TestClientOptionsV5Accepted(t *testing.T) {
	node := nodeT(t, NodeOptions{})
	ok(node.Put(bg, b("k"), b("v")))
	for _, opts := range []ClientOptions{
		{MaxInflight: 1}, {MaxInflight: 2}, {MaxInflight: 4096}, {MaxInflight: math.MaxUint32},
		{HotCacheStaleness: MaxHotCacheStaleness, HotCacheEntries: MaxHotCacheEntries},
		{HotCacheStaleness: time.Nanosecond, HotCacheEntries: 1}, // rounded up to 1 ms
		{HotCacheStaleness: 500 * time.Millisecond, MaxInflight: 1},
		{HotCacheEntries: MaxHotCacheEntries}, // no cache: ignored
	} {
		opts := opts
		opts.RequestTimeout = 5 * time.Second
		c := dialT(t, []string{node.Address()}, &opts)
		eq(t, getS(t, c, "k"), "v")
		ok(c.Put(bg, b("k"), b("v")))
		eq(t, getS(t, c, "k"), "v")
	}
}

func TestClientOptionsV5BadInput(t *testing.T) {
	eps := []string{"127.0.0.1:1"} // nothing connects before the first call
	bad := []ClientOptions{
		{HotCacheStaleness: -1},
		{HotCacheStaleness: -time.Hour},
		{HotCacheStaleness: MaxHotCacheStaleness + 1},
		{HotCacheStaleness: MaxHotCacheStaleness + time.Millisecond},
		{HotCacheStaleness: 24 * time.Hour},
		{HotCacheStaleness: math.MaxInt64},
		{HotCacheStaleness: time.Second, HotCacheEntries: MaxHotCacheEntries + 1},
		{HotCacheEntries: MaxHotCacheEntries + 1}, // out of range even with no cache
		{HotCacheEntries: math.MaxUint32},
	}
	if strconv.IntSize == 64 {
		big := uint(math.MaxUint32)
		bad = append(bad, ClientOptions{MaxInflight: big + 1},
			ClientOptions{HotCacheEntries: big + 1}, ClientOptions{MaxInflight: ^uint(0)})
	}
	for i, opts := range bad {
		opts := opts
		c, err := Dial(eps, &opts)
		if c != nil {
			c.Close()
		}
		e := mustIs(t, err, ErrInvalid)
		eq(t, e.Op, "dial")
		if e.Detail == "" {
			t.Fatalf("case %d (%+v): no detail", i, opts)
		}
	}
}
