package kv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// mustContain fails unless err's text holds every one of words.
func mustContain(t testing.TB, err error, words ...string) {
	t.Helper()
	for _, w := range words {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Fatalf("want an error mentioning %q, got %v", w, err)
		}
	}
}

// validRaw fails unless raw is the JSON text of an object.
func validRaw(t testing.TB, raw []byte) {
	t.Helper()
	var m map[string]interface{}
	if err := json.Unmarshal(raw, &m); err != nil || len(m) == 0 {
		t.Fatalf("Raw is not a JSON object: %q (%v)", raw, err)
	}
}

func TestBackupOfAnEmbeddedStore(t *testing.T) {
	dir := t.TempDir()
	db := openT(t, nil)
	for i := 0; i < 100; i++ {
		ok(db.Put(bg, []byte(fmt.Sprintf("key%d", i)), []byte(fmt.Sprintf("value%d", i))))
	}
	ok(db.Delete(bg, b("key7")))
	snap := filepath.Join(dir, "backups", "one") // its parents are created
	r := ok(db.Backup(bg, snap))
	eq(t, r.Dir, snap)
	if len(r.Nodes) != 1 {
		t.Fatalf("%+v", r)
	}
	n := r.Nodes[0]
	eq(t, n.Status, "OK")
	eq(t, n.NodeID, "") // an embedded store has no node id
	eq(t, n.Path, snap)
	if n.Bytes == 0 {
		t.Fatalf("a snapshot of no bytes: %+v", n)
	}
	validRaw(t, r.Raw)
	if _, err := os.Stat(filepath.Join(snap, "kv-backup.json")); err != nil {
		t.Fatal(err)
	}
	// Written after the snapshot: not in it.
	ok(db.Put(bg, b("later"), b("x")))
	ok(db.Put(bg, b("key1"), b("changed")))

	// The snapshot opens as a store of its own and holds the data as it was.
	snapDB, err := Open(snap, &OpenOptions{ErrorIfMissing: true, Sync: SyncNone})
	if err != nil {
		t.Fatal(err)
	}
	defer snapDB.Close()
	for i := 0; i < 100; i++ {
		v, err := snapDB.Get(bg, []byte(fmt.Sprintf("key%d", i)))
		if i == 7 {
			mustIs(t, err, ErrNotFound)
			continue
		}
		if err != nil {
			t.Fatalf("key%d: %v", i, err)
		}
		eq(t, string(v.Data), fmt.Sprintf("value%d", i))
		eq(t, v.Version, uint64(1))
	}
	_, err = snapDB.Get(bg, b("later"))
	mustIs(t, err, ErrNotFound)
	eq(t, string(ok(db.Get(bg, b("key1"))).Data), "changed") // the store goes on

	// Refusals: the directory exists now (the report still comes, saying
	// so), a relative path, a NUL.
	r, err = db.Backup(bg, snap)
	mustIs(t, err, ErrInvalid)
	mustContain(t, err, "already exists")
	if r == nil || len(r.Nodes) != 1 || r.Nodes[0].Status == "OK" || r.Nodes[0].Message == "" {
		t.Fatalf("a failed backup's report: %+v", r)
	}
	_, err = db.Backup(bg, "relative/dir")
	mustIs(t, err, ErrInvalid)
	_, err = db.Backup(bg, "")
	mustIs(t, err, ErrInvalid)
	_, err = db.Backup(bg, filepath.Join(dir, "a\x00b"))
	mustIs(t, err, ErrInvalid)
	mustContain(t, err, "NUL")

	// An embedded store has no cluster to repair or change.
	_, err = db.Repair(bg, "")
	mustIs(t, err, ErrNotSupported)
	_, err = db.TopologyChange(bg, ChangeCleanup, "")
	mustIs(t, err, ErrNotSupported)
	db.Close()
	_, err = db.Backup(bg, filepath.Join(dir, "closed"))
	mustIs(t, err, ErrClosed)
}

func TestAdministrationOfAClusterOfOne(t *testing.T) {
	addr := freePort(t)
	node := nodeT(t, NodeOptions{Listen: addr, Seeds: []string{addr}})
	client := dialT(t, []string{addr}, nil)
	waitFor(t, "the cluster of one", func() error { _, err := client.Put(bg, b("k"), b("v")); return err })
	dir := t.TempDir()

	// A client's backup: each member into dir/<node-id>.
	target := filepath.Join(dir, "cluster")
	r := ok(client.Backup(bg, target))
	eq(t, r.Dir, target)
	if len(r.Nodes) != 1 {
		t.Fatalf("%+v", r)
	}
	eq(t, r.Nodes[0].NodeID, "n1")
	eq(t, r.Nodes[0].Status, "OK")
	eq(t, r.Nodes[0].Path, filepath.Join(target, "n1"))
	snap := ok(Open(r.Nodes[0].Path, &OpenOptions{ErrorIfMissing: true, Sync: SyncNone}))
	eq(t, string(ok(snap.Get(bg, b("k"))).Data), "v")
	snap.Close()
	_, err := client.Backup(bg, target)
	mustIs(t, err, ErrInvalid)
	mustContain(t, err, "already exists")
	// A node's backup: its own store, into dir itself.
	nr := ok(node.Backup(bg, filepath.Join(dir, "node")))
	eq(t, nr.Nodes[0].NodeID, "n1")
	eq(t, nr.Nodes[0].Path, filepath.Join(dir, "node"))

	// Repair: every member (one), the member by name, the node itself.
	rr := ok(client.Repair(bg, ""))
	if len(rr.Nodes) != 1 || rr.Nodes[0].NodeID != "n1" || rr.Nodes[0].Status != "OK" ||
		rr.Nodes[0].Round == 0 {
		t.Fatalf("%s", rr.Raw)
	}
	validRaw(t, rr.Raw)
	// A node handle's own entry names no node (the library gives null).
	rr = ok(node.Repair(bg, ""))
	if len(rr.Nodes) != 1 || rr.Nodes[0].NodeID != "" || rr.Nodes[0].Status != "OK" ||
		rr.Nodes[0].Round == 0 {
		t.Fatalf("%s", rr.Raw)
	}
	_, err = client.Repair(bg, "ghost")
	mustIs(t, err, ErrInvalid)
	mustContain(t, err, "ghost")

	// Cleanup drops nothing here: the one member is every key's home.
	c := ok(client.TopologyChange(bg, ChangeCleanup, ""))
	eq(t, c.NodeID, "n1")
	eq(t, c.Ranges, uint64(0))
	if c.KeysAfter < 1 || c.KeysAfter != c.KeysBefore {
		t.Fatalf("%+v", c)
	}
	validRaw(t, c.Raw)

	// Refusals, each with the library's reason.
	_, err = client.TopologyChange(bg, ChangeLeave, "") // one member for three replicas
	mustIs(t, err, ErrInvalid)
	mustContain(t, err, "replicas")
	_, err = client.TopologyChange(bg, ChangeLeave, "ghost") // no such member
	mustIs(t, err, ErrInvalid)
	mustContain(t, err, "ghost", "member")
	_, err = client.TopologyChange(bg, ChangeRemove, "") // remove names its member
	mustIs(t, err, ErrInvalid)
	mustContain(t, err, "remove")
	_, err = client.TopologyChange(bg, "explode", "")
	mustIs(t, err, ErrInvalid)
	mustContain(t, err, `"leave"`, `"cleanup"`)
	_, err = node.TopologyChange(bg, "explode", "")
	mustIs(t, err, ErrInvalid)
	_, err = client.TopologyChange(bg, ChangeAbort, "") // nothing to abort
	mustIs(t, err, ErrInvalid)
	mustContain(t, err, "in progress")
	_, err = client.TopologyChange(bg, ChangeLeave, "n\x001")
	mustIs(t, err, ErrInvalid)
	mustContain(t, err, "NUL")
	eq(t, string(ok(client.Get(bg, b("k"))).Data), "v")
}

func TestAdministrationOfANodeAlone(t *testing.T) {
	node := nodeT(t, NodeOptions{})
	ok(node.Put(bg, b("k"), b("v")))
	_, err := node.Repair(bg, "")
	mustIs(t, err, ErrNotSupported)
	client := dialT(t, []string{node.Address()}, nil)
	_, err = client.TopologyChange(bg, ChangeCleanup, "")
	mustIs(t, err, ErrNotSupported)
	_, err = node.TopologyChange(bg, ChangeLeave, "")
	mustIs(t, err, ErrNotSupported)
	// A backup needs no cluster.
	r := ok(client.Backup(bg, filepath.Join(t.TempDir(), "b")))
	eq(t, r.Nodes[0].Status, "OK")
}

// describeRaw is the node's cluster description as a map (the fields the
// Description struct leaves out: "topology", each member's "state").
func describeRaw(db *DB) (map[string]interface{}, error) {
	s, err := db.simple(bg, "describe", 2)
	if err != nil {
		return nil, err
	}
	var m map[string]interface{}
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, err
	}
	return m, nil
}

// settled says nil when node's record has no change in progress, gone is
// "left" in it, and the node routes its requests with that record.
func settled(node *Node, gone string) error {
	d, err := describeRaw(node.DB)
	if err != nil {
		return err
	}
	topo, _ := d["topology"].(map[string]interface{})
	if topo == nil {
		return fmt.Errorf("no topology in %v", d)
	}
	if topo["operation"] != nil {
		return fmt.Errorf("a change is in progress: %v", topo["operation"])
	}
	if topo["epoch"] == nil || topo["epoch"] != topo["viewEpoch"] {
		// ... and the node routes with that record already.
		return fmt.Errorf("the record is at epoch %v, the routes at %v", topo["epoch"], topo["viewEpoch"])
	}
	members, _ := d["members"].([]interface{})
	for _, m := range members {
		mm, _ := m.(map[string]interface{})
		if mm["nodeId"] == gone {
			if mm["state"] == "left" {
				return nil
			}
			return fmt.Errorf("%s is %v", gone, mm["state"])
		}
	}
	return fmt.Errorf("%s is not among the members %v", gone, members)
}

func TestTopologyChangeLeave(t *testing.T) {
	dir := t.TempDir()
	var nodes []*Node
	var addrs []string
	for try := 0; try < 5 && nodes == nil; try++ { // a free port may be taken first
		addrs = []string{freePort(t), freePort(t), freePort(t)}
		var started []*Node
		var err error
		for i, a := range addrs {
			var n *Node
			n, err = StartNode(&NodeOptions{DataDir: filepath.Join(dir, fmt.Sprintf("t%d-n%d", try, i+1)),
				NodeID: fmt.Sprintf("n%d", i+1), Listen: a, Seeds: addrs[:1], Replicas: 2,
				FailurePause: 500 * time.Millisecond, Store: OpenOptions{Sync: SyncNone}})
			if err != nil {
				break
			}
			started = append(started, n)
		}
		if err == nil {
			nodes = started
			break
		}
		for _, n := range started {
			n.Close()
		}
		if !errors.Is(err, ErrBusy) {
			t.Fatal(err)
		}
	}
	if nodes == nil {
		t.Fatal("no three free ports")
	}
	for _, n := range nodes {
		n := n
		t.Cleanup(func() { n.Close() })
	}
	client := dialT(t, addrs, nil)
	for _, n := range nodes {
		waitFor(t, "three members in each one's record", func() error {
			d, err := n.Describe(bg)
			if err == nil && (!d.Complete || len(d.Members) != 3) {
				err = fmt.Errorf("%+v", d)
			}
			return err
		})
	}
	waitFor(t, "the ring", func() error { _, err := client.Put(bg, b("k0"), b("v0"), All); return err })
	for i := 1; i < 50; i++ {
		ok(client.Put(bg, []byte(fmt.Sprintf("k%d", i)), []byte(fmt.Sprintf("v%d", i)), All))
	}

	// n3 leaves, asked through n1: the record holding the change comes back.
	r := ok(nodes[0].TopologyChange(bg, ChangeLeave, "n3"))
	if r.Operation == nil || r.Operation.Kind != "leave" || r.Operation.Member != "n3" ||
		r.Epoch == 0 || r.Operation.SinceEpoch != r.Epoch {
		t.Fatalf("%s", r.Raw)
	}
	waitFor(t, "n3 to have left, in n1's and n2's records", func() error {
		if err := settled(nodes[0], "n3"); err != nil {
			return err
		}
		return settled(nodes[1], "n3")
	})
	// The change is over: nothing to abort, and n3 cannot leave again.
	_, err := nodes[0].TopologyChange(bg, ChangeAbort, "")
	mustIs(t, err, ErrInvalid)
	mustContain(t, err, "in progress")
	_, err = nodes[0].TopologyChange(bg, ChangeLeave, "n3")
	mustIs(t, err, ErrInvalid)
	mustContain(t, err, "n3")
	nodes[2].Close()
	// n3's ranges streamed to their new homes: every key is on both members
	// left (N = 2), each answering it at ALL without a read repair.
	for i := 0; i < 50; i++ {
		key := []byte(fmt.Sprintf("k%d", i))
		v, tr, err := nodes[i%2].GetTraced(bg, key, All)
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		eq(t, string(v.Data), fmt.Sprintf("v%d", i))
		if len(tr.Replicas) != 2 {
			t.Fatalf("%s: %+v", key, tr)
		}
		for _, r := range tr.Replicas {
			if r.NodeID == "n3" || r.Status != "OK" || r.Version != 1 || r.Repaired {
				t.Fatalf("%s: %+v", key, tr)
			}
		}
	}
	// Each remaining member keeps every key (N = 2 on two): cleanup drops
	// nothing it is a home of.
	c := ok(nodes[0].TopologyChange(bg, ChangeCleanup, ""))
	eq(t, c.NodeID, "n1")
	if c.KeysAfter < 50 {
		t.Fatalf("%s", c.Raw)
	}
}

func TestAdministrationAndContexts(t *testing.T) {
	dir := t.TempDir()
	db := openT(t, nil)
	// A context already done: nothing starts, no snapshot is taken.
	done, cancel := context.WithCancel(bg)
	cancel()
	r, err := db.Backup(done, filepath.Join(dir, "never"))
	mustIs(t, err, context.Canceled)
	if r != nil {
		t.Fatalf("%+v", r)
	}
	if _, err := os.Stat(filepath.Join(dir, "never")); !os.IsNotExist(err) {
		t.Fatalf("a backup with a done context made its directory: %v", err)
	}
	// A client whose node never answers: the change is abandoned when the
	// context ends, with no report, and may still be recorded.
	client := dialT(t, []string{silentServer(t)}, &ClientOptions{RequestTimeout: time.Second})
	ctx, cancel2 := context.WithTimeout(bg, 100*time.Millisecond)
	defer cancel2()
	tr, err := client.TopologyChange(ctx, ChangeCleanup, "")
	mustIs(t, err, context.DeadlineExceeded)
	mustIs(t, err, ErrUnknownOutcome)
	if tr != nil {
		t.Fatalf("%+v", tr)
	}
}
