package kv

import (
	"strconv"
	"testing"
)

// go test -run XXX -bench . : the embedded handle's Get and Put, and what
// crossing into C costs by itself.

func BenchmarkPut(b *testing.B) {
	db := openT(b, &OpenOptions{Sync: SyncNone})
	val := make([]byte, 100)
	keys := make([][]byte, 1000)
	for i := range keys {
		keys[i] = []byte("key" + strconv.Itoa(i))
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := db.Put(bg, keys[i%len(keys)], val); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGet(b *testing.B) {
	db := openT(b, &OpenOptions{Sync: SyncNone})
	keys := make([][]byte, 1000)
	for i := range keys {
		keys[i] = []byte("key" + strconv.Itoa(i))
		if _, err := db.Put(bg, keys[i], make([]byte, 100)); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := db.Get(bg, keys[i%len(keys)]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetParallel(b *testing.B) {
	db := openT(b, &OpenOptions{Sync: SyncNone})
	key := []byte("key")
	if _, err := db.Put(bg, key, make([]byte, 100)); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := db.Get(bg, key); err != nil {
				b.Fatal(err)
			}
		}
	})
}

//go:noinline
func goNoop(x int) int { return x }

// BenchmarkCgoCall is a trivial C call (returns its argument), the floor of
// every binding call; BenchmarkGoCall the same as a Go function.
func BenchmarkCgoCall(b *testing.B) {
	s := 0
	for i := 0; i < b.N; i++ {
		s += cgoNoop(i)
	}
	_ = s
}

func BenchmarkGoCall(b *testing.B) {
	s := 0
	for i := 0; i < b.N; i++ {
		s += goNoop(i)
	}
	_ = s
}
