package kv

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startNodeErr starts a node that must be refused, and returns the error.
func startNodeErr(t *testing.T, o NodeOptions) error {
	t.Helper()
	o.Store.Sync = SyncNone
	n, err := StartNode(&o)
	if err == nil {
		n.Close()
		t.Fatalf("a node was started with %+v", o)
	}
	return err
}

func TestMetadataRefused(t *testing.T) {
	dir := t.TempDir()
	// A node alone keeps no topology: metadata without peers or seeds.
	err := startNodeErr(t, NodeOptions{DataDir: filepath.Join(dir, "a"), NodeID: "n1",
		Metadata: "etcd://127.0.0.1:2379/kv"})
	mustIs(t, err, ErrInvalid)
	mustContain(t, err, "metadata", "peers or seeds")

	// A value that is no etcd URL, on a node that could keep it (a cluster
	// of one: its seeds are itself).
	for _, bad := range []string{"http://127.0.0.1:2379/kv", "etcd:///kv", "127.0.0.1:2379"} {
		addr := freePort(t)
		err = startNodeErr(t, NodeOptions{DataDir: filepath.Join(dir, "b"), NodeID: "n1",
			Listen: addr, Seeds: []string{addr}, Metadata: bad})
		mustIs(t, err, ErrInvalid)
		mustContain(t, err, "metadata", bad)
	}
	err = startNodeErr(t, NodeOptions{DataDir: filepath.Join(dir, "c"), NodeID: "n1",
		Seeds: []string{"127.0.0.1:1"}, Metadata: "etcd://127.0.0.1:2379/k\x00v"})
	mustIs(t, err, ErrInvalid)
	mustContain(t, err, "Metadata", "NUL")
}

// etcdProcess is a real etcd on free loopback ports, killed (by its pid) and
// reaped when the test ends.
type etcdProcess struct {
	client string // 127.0.0.1:port
	cmd    *exec.Cmd
	exited chan struct{}
	log    string
}

func startEtcd(t *testing.T) *etcdProcess {
	const bin = "/usr/bin/etcd"
	if _, err := os.Stat(bin); err != nil {
		t.Skip("no etcd at /usr/bin/etcd (Debian's etcd-server): the metadata refusals are tested without it")
	}
	dir := t.TempDir()
	var lastErr error
	for try := 0; try < 3; try++ { // a free port may be taken before etcd binds it
		e := &etcdProcess{client: freePort(t), exited: make(chan struct{}),
			log: filepath.Join(dir, fmt.Sprintf("etcd-%d.log", try))}
		peer := freePort(t)
		logf, err := os.Create(e.log)
		if err != nil {
			t.Fatal(err)
		}
		cu, pu := "http://"+e.client, "http://"+peer
		e.cmd = exec.Command(bin, "--name", "default",
			"--data-dir", filepath.Join(dir, fmt.Sprintf("data-%d", try)),
			"--listen-client-urls", cu, "--advertise-client-urls", cu,
			"--listen-peer-urls", pu, "--initial-advertise-peer-urls", pu,
			"--initial-cluster", "default="+pu)
		e.cmd.Stdout, e.cmd.Stderr = logf, logf
		if err := e.cmd.Start(); err != nil {
			logf.Close()
			t.Fatal(err)
		}
		logf.Close() // the child has its own descriptor
		go func() { e.cmd.Wait(); close(e.exited) }()
		t.Cleanup(e.stop)
		if lastErr = e.waitHealthy(20 * time.Second); lastErr == nil {
			return e
		}
		e.stop()
	}
	text, _ := os.ReadFile(filepath.Join(dir, "etcd-2.log"))
	t.Fatalf("etcd did not become healthy: %v\n%s", lastErr, tail(string(text), 20))
	return nil
}

// waitHealthy polls etcd's /health until it says true, it exits, or limit
// passes.
func (e *etcdProcess) waitHealthy(limit time.Duration) error {
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(limit)
	for {
		resp, err := hc.Get("http://" + e.client + "/health")
		if err == nil {
			var buf [256]byte
			n, _ := resp.Body.Read(buf[:])
			resp.Body.Close()
			if resp.StatusCode == 200 && strings.Contains(string(buf[:n]), "true") {
				return nil
			}
			err = fmt.Errorf("/health: %d %q", resp.StatusCode, buf[:n])
		}
		select {
		case <-e.exited:
			return errors.New("etcd exited")
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return err
		}
	}
}

// stop kills etcd by its pid and reaps it; idempotent.
func (e *etcdProcess) stop() {
	select {
	case <-e.exited:
		return
	default:
	}
	e.cmd.Process.Kill()
	<-e.exited
}

func tail(s string, lines int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// A cluster of one whose topology record is kept in a real etcd: it serves,
// says where its record is, and a change (a cleanup) and a refusal go
// through the binding as they do without etcd.
func TestMetadataInEtcd(t *testing.T) {
	e := startEtcd(t)
	url := "etcd://" + e.client + "/libkv-go-test"
	addr := freePort(t)
	node := nodeT(t, NodeOptions{Listen: addr, Seeds: []string{addr}, Metadata: url})
	client := dialT(t, []string{addr}, nil)
	waitFor(t, "the cluster of one", func() error { _, err := client.Put(bg, b("k"), b("v")); return err })
	// The node says its record is in that etcd, and holds its lease there.
	waitFor(t, "the node's lease in etcd", func() error {
		d, err := describeRaw(node.DB)
		if err != nil {
			return err
		}
		topo, _ := d["topology"].(map[string]interface{})
		md, _ := topo["metadata"].(map[string]interface{})
		where, _ := md["etcd"].(string)
		if !strings.Contains(where, e.client) || md["leaseHeld"] != true {
			return fmt.Errorf("topology.metadata is %v, not etcd at %s with the lease held",
				topo["metadata"], e.client)
		}
		return nil
	})
	c := ok(client.TopologyChange(bg, ChangeCleanup, ""))
	eq(t, c.NodeID, "n1")
	_, err := client.TopologyChange(bg, ChangeLeave, "ghost")
	mustIs(t, err, ErrInvalid)
	mustContain(t, err, "ghost")
	eq(t, string(ok(node.Get(bg, b("k"))).Data), "v")
}
