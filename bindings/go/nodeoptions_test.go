package kv

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// NodeOptions of kv_node_options versions 5 to 8 (SlowRequest, AEInterval,
// RepairBytesPerSec, AEDigestBits, StreamBytesPerSec, Replace): each is
// shown to reach the library by a value only the library refuses
// (ErrInvalid with its message naming the C field), next to nodes started
// with valid ones.
func TestNodeOptionsReachTheLibrary(t *testing.T) {
	dir := t.TempDir()
	refused := func(field string, o NodeOptions) {
		t.Helper()
		o.DataDir, o.NodeID = filepath.Join(dir, "refused"), "refused"
		e := mustIs(t, startNodeErr(t, o), ErrInvalid)
		mustContain(t, e, field) // the library's message: the C field's name
	}
	refused("slow_request_ms", NodeOptions{SlowRequest: time.Hour + time.Millisecond})
	refused("slow_request_ms", NodeOptions{SlowRequest: 1 << 62}) // clamped, refused
	refused("ae_interval_s", NodeOptions{AEInterval: 7*24*time.Hour + time.Second})
	refused("ae_interval_s", NodeOptions{AEInterval: 7*24*time.Hour + time.Millisecond}) // rounded up
	refused("ae_interval_s", NodeOptions{AEInterval: 1 << 62})                           // never taken for "never"
	for _, bits := range []uint{1, 3, 25, math.MaxUint32} {
		refused("ae_digest_bits", NodeOptions{AEDigestBits: bits})
	}
	// A node that replaces a member needs a cluster to fetch it from.
	refused("replaces a member", NodeOptions{Replace: true})

	for i, o := range []NodeOptions{
		{SlowRequest: time.Hour, AEInterval: 7 * 24 * time.Hour, AEDigestBits: 4},
		{SlowRequest: time.Microsecond, AEInterval: AEIntervalNever, AEDigestBits: 24},
		{AEInterval: time.Millisecond, RepairBytesPerSec: 1, StreamBytesPerSec: math.MaxUint64},
		{RepairBytesPerSec: 0, StreamBytesPerSec: 0, AEDigestBits: 0, Replace: false},
	} {
		o.NodeID = fmt.Sprintf("n%d", i)
		n := nodeT(t, o)
		ok(n.Put(bg, b("k"), b("v")))
	}

	// The binding's own refusals (nothing reaches C), naming the Go field.
	for _, c := range []struct {
		field string
		o     NodeOptions
	}{
		{"SlowRequest", NodeOptions{SlowRequest: -time.Millisecond}},
		{"AEInterval", NodeOptions{AEInterval: -2}},
		{"AEInterval", NodeOptions{AEInterval: -time.Hour}},
	} {
		c.o.DataDir, c.o.NodeID = filepath.Join(dir, "refused"), "refused"
		mustContain(t, mustIs(t, startNodeErr(t, c.o), ErrInvalid), c.field)
	}
}

// Every uint of the options that C takes as a 32-bit unsigned int, and the
// hint window's seconds, are refused with ErrInvalid when they do not fit:
// never truncated (1<<32 would become 0, the default, and start a node).
func TestOptionsOver32Bits(t *testing.T) {
	if strconv.IntSize < 64 {
		t.Skip("a uint of this Go is 32 bits: every value fits")
	}
	over := uint(math.MaxUint32)
	over++ // 1<<32, computed so that this builds where uint is 32 bits
	dir := t.TempDir()
	for _, c := range []struct {
		field string
		set   func(*NodeOptions)
	}{
		{"Replicas", func(o *NodeOptions) { o.Replicas = over }},
		{"VNodes", func(o *NodeOptions) { o.VNodes = over }},
		{"IOThreads", func(o *NodeOptions) { o.IOThreads = over }},
		{"HTTPThreads", func(o *NodeOptions) { o.HTTPThreads = over }},
		{"MaxConnections", func(o *NodeOptions) { o.MaxConnections = over }},
		{"AEDigestBits", func(o *NodeOptions) { o.AEDigestBits = over + 18 }},
		{"HintWindow", func(o *NodeOptions) { o.HintWindow = time.Duration(over) * time.Second }},
	} {
		o := NodeOptions{DataDir: filepath.Join(dir, "refused"), NodeID: "refused"}
		c.set(&o)
		e := mustIs(t, startNodeErr(t, o), ErrInvalid)
		mustContain(t, e, c.field, "4294967295")
	}
	// The largest that fits is not refused by the binding (the library may
	// refuse it for its own reasons: a value, not a truncation).
	o := NodeOptions{NodeID: "n1", HintWindow: math.MaxUint32 * time.Second}
	nodeT(t, o)

	_, err := Dial([]string{"127.0.0.1:1"}, &ClientOptions{ConnectionsPerNode: over})
	mustContain(t, mustIs(t, err, ErrInvalid), "ConnectionsPerNode", "4294967295")
	_, err = Dial([]string{"127.0.0.1:1"}, &ClientOptions{MaxInflight: over + 1})
	mustContain(t, mustIs(t, err, ErrInvalid), "MaxInflight")
	c := dialT(t, []string{"127.0.0.1:1"}, &ClientOptions{ConnectionsPerNode: 2, RequestTimeout: time.Second})
	eq(t, c.Kind(), Client)
}

// aeStatus is the part of a node's description (GET /v1/cluster's
// antiEntropy, docs/HTTP.md) the anti-entropy test reads.
type aeStatus struct {
	Exchanges       uint64 `json:"exchanges"`
	ExchangesFailed uint64 `json:"exchangesFailed"`
	LastPeer        string `json:"lastPeer"`
	Round           struct {
		ID          uint64 `json:"id"`
		Running     bool   `json:"running"`
		Peers       int    `json:"peers"`
		PeersDone   int    `json:"peersDone"`
		PeersFailed int    `json:"peersFailed"`
	} `json:"round"`
}

func antiEntropy(t *testing.T, n *Node) (aeStatus, error) {
	s, err := n.simple(bg, "describe", 2) // Describe's JSON, as the library gave it
	if err != nil {
		return aeStatus{}, err
	}
	var d struct {
		AE *aeStatus `json:"antiEntropy"`
	}
	if err := json.Unmarshal([]byte(s), &d); err != nil {
		t.Fatalf("describe: %v: %s", err, s)
	}
	if d.AE == nil {
		return aeStatus{}, fmt.Errorf("no antiEntropy in %s", s)
	}
	return *d.AE, nil
}

// A cluster of two: n1 with AEIntervalNever runs no periodic exchange
// while n2 (AEInterval 1 s) runs them; a repair asked for runs on n1 all
// the same.
func TestAEIntervalNever(t *testing.T) {
	dir := t.TempDir()
	var nodes []*Node
	for try := 0; try < 5 && len(nodes) < 2; try++ { // a free port may be taken first
		addrs := []string{freePort(t), freePort(t)}
		nodes = nil
		var err error
		for i, a := range addrs {
			o := NodeOptions{DataDir: filepath.Join(dir, fmt.Sprintf("t%d-n%d", try, i+1)),
				NodeID: fmt.Sprintf("n%d", i+1), Listen: a, Peers: addrs, Replicas: 2,
				FailurePause: 500 * time.Millisecond, Store: OpenOptions{Sync: SyncNone},
				AEInterval: AEIntervalNever}
			if i == 1 {
				o.AEInterval = time.Second
			}
			var n *Node
			if n, err = StartNode(&o); err != nil {
				break
			}
			nodes = append(nodes, n)
			t.Cleanup(func() { n.Close() })
		}
		if err != nil && !errors.Is(err, ErrBusy) {
			t.Fatal(err)
		}
		if err != nil {
			for _, n := range nodes {
				n.Close()
			}
			nodes = nil
		}
	}
	if len(nodes) < 2 {
		t.Fatal("no two free ports")
	}
	n1, n2 := nodes[0], nodes[1]
	for _, n := range nodes {
		waitFor(t, "a complete ring", func() error {
			d, err := n.Describe(bg)
			if err == nil && !d.Complete {
				err = errors.New("incomplete")
			}
			return err
		})
	}
	ok(n1.Put(bg, b("k"), b("v"), All))
	// n2's periodic exchanges run (with the default of 60 s, none would
	// start within waitFor's bound: the option reaches the library).
	waitFor(t, "n2's periodic exchanges", func() error {
		ae, err := antiEntropy(t, n2)
		if err == nil && ae.Exchanges < 3 {
			err = fmt.Errorf("%d exchanges so far", ae.Exchanges)
		}
		return err
	})
	// Meanwhile n1 ran none: answering n2's is not running one.
	before := ok(antiEntropy(t, n1))
	if before.Exchanges+before.ExchangesFailed != 0 || before.Round.ID != 0 {
		t.Fatalf("n1 ran exchanges of its own: %+v", before)
	}
	// A repair asked for runs on n1 all the same: one exchange, with n2.
	r := ok(n1.Repair(bg, ""))
	if len(r.Nodes) != 1 || r.Nodes[0].Status != "OK" || r.Nodes[0].Round == 0 {
		t.Fatalf("repair: %s", r.Raw)
	}
	var done aeStatus
	waitFor(t, "n1's repair round", func() error {
		ae, err := antiEntropy(t, n1)
		if err == nil && (ae.Round.ID != r.Nodes[0].Round || ae.Round.Running) {
			err = fmt.Errorf("round %+v", ae.Round)
		}
		done = ae
		return err
	})
	if done.Round.Peers != 1 || done.Round.PeersDone != 1 || done.Round.PeersFailed != 0 ||
		done.LastPeer != "n2" || done.Exchanges+done.ExchangesFailed != 1 {
		t.Fatalf("n1 after its repair round: %+v", done)
	}
	v := ok(n2.Get(bg, b("k"), One))
	eq(t, string(v.Data), "v")
}
