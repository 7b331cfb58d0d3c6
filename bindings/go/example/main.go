// Command example shows the Go binding: an embedded store, then a node
// started in this process and a client of it.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"libkv.dev/kv"
)

func main() {
	dir, err := os.MkdirTemp("", "libkv-go-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()

	db, err := kv.Open(filepath.Join(dir, "embedded"), &kv.OpenOptions{Sync: kv.SyncNone})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	ver, err := db.Put(ctx, []byte("user:1"), []byte("ada"), kv.TTL(time.Hour))
	if err != nil {
		log.Fatal(err)
	}
	v, err := db.Get(ctx, []byte("user:1"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("put version %d, got %q version %d expiring %s\n", ver, v.Data, v.Version,
		v.Expiry.Format(time.RFC3339))
	if _, err := db.CAS(ctx, []byte("user:1"), v.Version+7, []byte("grace")); errors.Is(err, kv.ErrConflict) {
		var e *kv.Error
		errors.As(err, &e)
		fmt.Printf("cas refused: current version is %d\n", e.Version)
	}
	if _, err := db.Get(ctx, []byte("nobody")); errors.Is(err, kv.ErrNotFound) {
		fmt.Println("nobody: not found")
	}

	node, err := kv.StartNode(&kv.NodeOptions{DataDir: filepath.Join(dir, "node"), NodeID: "n1",
		Listen: "127.0.0.1:0", Store: kv.OpenOptions{Sync: kv.SyncNone}})
	if err != nil {
		log.Fatal(err)
	}
	defer node.Close()
	client, err := kv.Dial([]string{node.Address()}, &kv.ClientOptions{RequestTimeout: 2 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := client.Put(cctx, []byte("k"), []byte("v"), kv.All); err != nil {
		log.Fatal(err)
	}
	res, err := client.Batch(cctx, new(kv.Batch).Get([]byte("k")).Delete([]byte("k")))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("through the client of %s: %q, then deleted at version %d\n", node.Address(),
		res[0].Value.Data, res[1].Version)
	fmt.Println("done")
}
