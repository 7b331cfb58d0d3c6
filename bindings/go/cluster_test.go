package kv

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"testing"
	"time"
)

func startThree(t *testing.T) ([]*Node, []string) {
	dir := t.TempDir()
	for try := 0; try < 5; try++ { // a free port may be taken before we bind it
		addrs := []string{freePort(t), freePort(t), freePort(t)}
		var nodes []*Node
		var err error
		for i, a := range addrs {
			var n *Node
			n, err = StartNode(&NodeOptions{DataDir: filepath.Join(dir, fmt.Sprintf("t%d-n%d", try, i+1)),
				NodeID: fmt.Sprintf("n%d", i+1), Listen: a, Peers: addrs,
				FailurePause: 500 * time.Millisecond, Store: OpenOptions{Sync: SyncNone}})
			if err != nil {
				break
			}
			nodes = append(nodes, n)
		}
		if err == nil {
			for _, n := range nodes {
				n := n
				t.Cleanup(func() { n.Close() })
			}
			return nodes, addrs
		}
		for _, n := range nodes {
			n.Close()
		}
		if !errors.Is(err, ErrBusy) {
			t.Fatal(err)
		}
	}
	t.Fatal("no three free ports")
	return nil, nil
}

func TestThreeNodeCluster(t *testing.T) {
	nodes, addrs := startThree(t)
	client := dialT(t, addrs, &ClientOptions{RequestTimeout: 2 * time.Second})
	// Until every member has told its id, data calls are unavailable.
	waitFor(t, "the ring", func() error { _, err := client.Put(bg, b("k"), b("v"), All); return err })
	for _, n := range nodes {
		waitFor(t, "a complete ring", func() error {
			d, err := n.Describe(bg)
			if err == nil && !d.Complete {
				err = errors.New("incomplete")
			}
			return err
		})
	}
	d := ok(nodes[0].Describe(bg))
	var ids []string
	for _, m := range d.Members {
		ids = append(ids, *m.NodeID)
	}
	sort.Strings(ids)
	eq(t, fmt.Sprint(ids), "[n1 n2 n3]")
	for _, m := range d.Members {
		eq(t, m.State, "normal")
	}
	eq(t, d.ReplicationFactor, 3)
	if d.Failures == nil || d.Failures.MembersUp+d.Failures.MembersDown != 3 {
		t.Fatalf("failures: %+v", d.Failures)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(d.Raw, &raw); err != nil || raw["antiEntropy"] == nil || raw["topology"] == nil {
		t.Fatalf("the whole document (%v): %s", err, d.Raw)
	}
	eq(t, string(ok(client.Get(bg, b("k"), All)).Data), "v")
	for i := 0; i < 30; i++ {
		ok(client.Put(bg, []byte(fmt.Sprintf("key%d", i)), []byte(fmt.Sprintf("value%d", i))))
	}
	_, tr, err := nodes[0].GetTraced(bg, b("k"), All)
	if err != nil || len(tr.Replicas) != 3 {
		t.Fatal(tr, err)
	}
	for _, n := range nodes { // N = 3 on three nodes: each holds every key
		eq(t, string(ok(n.Get(bg, b("key7"), One)).Data), "value7")
	}
	// SERIAL: linearizable per key; CAS defaults to it in a cluster.
	eq(t, ok(client.CAS(bg, b("s"), 0, b("1"), Serial)), uint64(1))
	eq(t, string(ok(client.Get(bg, b("s"), Serial)).Data), "1")
	eq(t, ok(client.CAS(bg, b("s"), 1, b("2"))), uint64(2))
	_, err = client.CAS(bg, b("s"), 1, b("lost"))
	eq(t, mustIs(t, err, ErrConflict).Version, uint64(2))

	nodes[2].Close()          // one node stopped
	for i := 0; i < 30; i++ { // QUORUM (2 of 3) goes on
		key := []byte(fmt.Sprintf("key%d", i))
		eq(t, string(ok(client.Get(bg, key)).Data), fmt.Sprintf("value%d", i))
		ok(client.Put(bg, key, b("after")))
	}
	v := ok(client.Get(bg, b("key3"), Quorum))
	eq(t, string(v.Data), "after")
	eq(t, v.Version, uint64(2))
	eq(t, ok(client.CAS(bg, b("key3"), 2, b("cas"))), uint64(3))
	res := ok(client.Batch(bg, new(Batch).Put(b("b"), b("1"), 0).Get(b("key3"))))
	eq(t, string(res[1].Value.Data), "cas")
	// ALL cannot be met: a write is refused, and known not applied.
	_, err = client.Put(bg, b("all"), b("x"), All, HomeOnly)
	mustIs(t, err, ErrUnavailable)
	_, err = client.Get(bg, b("all"), One)
	mustIs(t, err, ErrNotFound)
	if _, err = client.Get(bg, b("key3"), All); !Retryable(err) {
		t.Fatal(err)
	}
	eq(t, string(ok(client.Get(bg, b("key3"), R(2))).Data), "cas")
	ok(client.Put(bg, b("w2"), b("x"), W(2)))
	// A majority of the key's homes is still there: SERIAL goes on, and
	// racing CAS increments lose nothing (unknown outcomes allowed).
	eq(t, ok(client.CAS(bg, b("s"), 2, b("3"), Serial)), uint64(3))
	casCounter(t, client, b("serial-counter"), 4, 25, true)
}
