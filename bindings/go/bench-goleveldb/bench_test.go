// Package bench compares the Go binding's embedded store (libkv.dev/kv) with
// goleveldb (github.com/syndtr/goleveldb, from Debian) on the same workload:
// 100,000 keys of 16 bytes with 200-byte values, put in a shuffled order into
// an empty store, then read back in another shuffled order, without fsync on
// either side (libkv SyncNone; goleveldb's default WriteOptions, Sync false),
// by one goroutine or by 2 goroutines that split the key list in halves.
//
// One benchmark iteration is a whole phase (100,000 calls): ns/op is per
// phase, and the ns/call metric is ns/op divided by 100,000. Put opens a fresh
// store for every iteration (not timed); Get reads a store filled once by the
// same shuffled Put (not timed). Run with -benchtime 1x -count N; run.sh does,
// and prints the medians and the libkv/goleveldb ratios.
package bench

import (
	"context"
	"fmt"
	"math/rand"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/syndtr/goleveldb/leveldb"
	"libkv.dev/kv"
)

const (
	nKeys  = 100000
	keyLen = 16
	valLen = 200
)

var (
	keys    [][]byte // keys[i] is 16 bytes
	vals    [][]byte // vals[i] is the 200 random bytes of keys[i]
	putPerm []int    // the order of the puts
	getPerm []int    // the order of the gets
)

func init() {
	r := rand.New(rand.NewSource(15))
	keys = make([][]byte, nKeys)
	vals = make([][]byte, nKeys)
	for i := range keys {
		keys[i] = []byte(fmt.Sprintf("key%013d", i))
		vals[i] = make([]byte, valLen)
		r.Read(vals[i])
	}
	putPerm = r.Perm(nKeys)
	getPerm = r.Perm(nKeys)
}

type store interface {
	put(k, v []byte) error
	get(k []byte) ([]byte, error)
	close() error
}

var bg = context.Background()

type libkvStore struct{ db *kv.DB }

func (s libkvStore) put(k, v []byte) error { _, err := s.db.Put(bg, k, v); return err }
func (s libkvStore) get(k []byte) ([]byte, error) {
	v, err := s.db.Get(bg, k)
	if err != nil {
		return nil, err
	}
	return v.Data, nil
}
func (s libkvStore) close() error { return s.db.Close() }

type leveldbStore struct{ db *leveldb.DB }

func (s leveldbStore) put(k, v []byte) error        { return s.db.Put(k, v, nil) }
func (s leveldbStore) get(k []byte) ([]byte, error) { return s.db.Get(k, nil) }
func (s leveldbStore) close() error                 { return s.db.Close() }

var opens = []struct {
	name string
	open func(dir string) (store, error)
}{
	{"libkv", func(dir string) (store, error) {
		db, err := kv.Open(filepath.Join(dir, "kv"), &kv.OpenOptions{Sync: kv.SyncNone})
		return libkvStore{db}, err
	}},
	{"goleveldb", func(dir string) (store, error) {
		db, err := leveldb.OpenFile(filepath.Join(dir, "leveldb"), nil)
		return leveldbStore{db}, err
	}},
}

// phase runs f over perm split into g contiguous parts, one goroutine each.
func phase(b *testing.B, perm []int, g int, f func(i int) error) {
	var wg sync.WaitGroup
	errs := make(chan error, g)
	part := (len(perm) + g - 1) / g
	for w := 0; w < g; w++ {
		lo, hi := w*part, (w+1)*part
		if hi > len(perm) {
			hi = len(perm)
		}
		wg.Add(1)
		go func(p []int) {
			defer wg.Done()
			for _, i := range p {
				if err := f(i); err != nil {
					errs <- err
					return
				}
			}
		}(perm[lo:hi])
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

func fill(b *testing.B, s store, g int) {
	phase(b, putPerm, g, func(i int) error { return s.put(keys[i], vals[i]) })
}

func BenchmarkPut(b *testing.B) {
	for _, g := range []int{1, 2} {
		for _, o := range opens {
			b.Run(fmt.Sprintf("g%d/%s", g, o.name), func(b *testing.B) {
				var spent time.Duration
				for n := 0; n < b.N; n++ {
					b.StopTimer()
					s, err := o.open(b.TempDir())
					if err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
					t0 := time.Now()
					fill(b, s, g)
					spent += time.Since(t0)
					b.StopTimer()
					if err := s.close(); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
				b.ReportMetric(float64(spent.Nanoseconds())/float64(b.N)/nKeys, "ns/call")
			})
		}
	}
}

func BenchmarkGet(b *testing.B) {
	for _, g := range []int{1, 2} {
		for _, o := range opens {
			b.Run(fmt.Sprintf("g%d/%s", g, o.name), func(b *testing.B) {
				s, err := o.open(b.TempDir())
				if err != nil {
					b.Fatal(err)
				}
				defer s.close()
				fill(b, s, 1)
				b.ResetTimer()
				t0 := time.Now()
				for n := 0; n < b.N; n++ {
					phase(b, getPerm, g, func(i int) error {
						v, err := s.get(keys[i])
						if err != nil {
							return err
						}
						if len(v) != valLen || v[0] != vals[i][0] || v[valLen-1] != vals[i][valLen-1] {
							return fmt.Errorf("%s: wrong value for %q", o.name, keys[i])
						}
						return nil
					})
				}
				spent := time.Since(t0)
				b.StopTimer()
				b.ReportMetric(float64(spent.Nanoseconds())/float64(b.N)/nKeys, "ns/call")
			})
		}
	}
}
