package kv

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// casCounter: goroutines each try attempts read-then-CAS increments; returns
// the number of successful CAS after checking the stored counter equals it
// (with unknownOK, as in a cluster, between the successes and the successes
// plus the unknown outcomes).
func casCounter(t *testing.T, db *DB, key []byte, goroutines, attempts int, unknownOK bool) int {
	first := ok(db.Put(bg, key, b("0")))
	var wins, unknown int64
	errs := make(chan error, goroutines)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := 0; i < attempts; i++ {
				v, err := db.Get(bg, key)
				if err != nil {
					errs <- err
					return
				}
				n, _ := strconv.Atoi(string(v.Data))
				_, err = db.CAS(bg, key, v.Version, []byte(strconv.Itoa(n+1)))
				var e *Error
				switch {
				case err == nil:
					atomic.AddInt64(&wins, 1)
				case errors.Is(err, ErrConflict) && errors.As(err, &e):
					if e.Version <= v.Version {
						errs <- fmt.Errorf("conflict version %d <= read %d", e.Version, v.Version)
						return
					}
				case unknownOK && (errors.Is(err, ErrUnknownOutcome) || errors.Is(err, ErrTimeout)):
					// In a cluster a CAS may also give up after losing
					// every Paxos round to the others ("not applied", as
					// KV_ETIMEDOUT): counted with the unknowns, which only
					// widens what the counter may be.
					atomic.AddInt64(&unknown, 1)
				default:
					errs <- err
					return
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	final := ok(db.Get(bg, key))
	n, _ := strconv.Atoi(string(final.Data))
	if int64(n) < wins || int64(n) > wins+unknown {
		t.Fatalf("counter %d, %d successful CAS, %d unknown", n, wins, unknown)
	}
	eq(t, final.Version, first+uint64(n))
	if wins == 0 {
		t.Fatal("no CAS succeeded")
	}
	return int(wins)
}

func TestCASCounterEmbedded(t *testing.T) {
	casCounter(t, openT(t, nil), b("counter"), 8, 150, false)
}

func TestCASCounterNode(t *testing.T) {
	casCounter(t, nodeT(t, NodeOptions{}).DB, b("counter"), 8, 150, false)
}

func TestCASCounterClientOfANode(t *testing.T) {
	node := nodeT(t, NodeOptions{})
	casCounter(t, dialT(t, []string{node.Address()}, nil), b("counter"), 8, 100, false)
}

// closeUnderLoad closes db while goroutines call it: each finishes with
// ErrClosed, nothing else fails, nothing crashes.
func closeUnderLoad(t *testing.T, db *DB, extra func() error) {
	var wg sync.WaitGroup
	outcomes := make(chan error, 4)
	var calls int64
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for n := 0; ; n++ {
				key := []byte(fmt.Sprintf("t%d-%d", g, n%50))
				err := func() error {
					if _, err := db.Put(bg, key, make([]byte, 100)); err != nil {
						return err
					}
					if _, err := db.Get(bg, key); err != nil {
						return err
					}
					if _, err := db.Batch(bg, new(Batch).Get(key).Put(key, b("y"), 0)); err != nil {
						return err
					}
					if extra != nil {
						return extra()
					}
					return nil
				}()
				if err != nil {
					outcomes <- err
					return
				}
				atomic.AddInt64(&calls, 1)
			}
		}(g)
	}
	waitFor(t, "some calls", func() error {
		if atomic.LoadInt64(&calls) < 20 {
			return errors.New("too few")
		}
		return nil
	})
	db.Close() // while the goroutines are busy
	wg.Wait()
	close(outcomes)
	for err := range outcomes {
		mustIs(t, err, ErrClosed)
	}
}

func TestCloseDuringCallsEmbedded(t *testing.T) {
	db := ok(Open(filepath.Join(t.TempDir(), "db"), &OpenOptions{Sync: SyncNone}))
	closeUnderLoad(t, db, nil)
}

func TestCloseDuringCallsNodeAndClient(t *testing.T) {
	node := ok(StartNode(&NodeOptions{DataDir: filepath.Join(t.TempDir(), "n"), NodeID: "n1",
		Store: OpenOptions{Sync: SyncNone}}))
	client := ok(Dial([]string{node.Address()}, nil))
	closeUnderLoad(t, client, func() error { return client.Ping(bg) })
	closeUnderLoad(t, node.DB, func() error { _, err := node.Describe(bg); return err })
}

func TestConcurrentClose(t *testing.T) {
	db := ok(Open(filepath.Join(t.TempDir(), "db"), &OpenOptions{Sync: SyncNone}))
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); db.Close() }()
	}
	wg.Wait()
	if !db.Closed() {
		t.Fatal("not closed")
	}
}
