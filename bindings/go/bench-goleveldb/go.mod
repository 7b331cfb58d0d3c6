// Its own module, so that libkv.dev/kv gains no dependency. Offline only:
// goleveldb and snappy come from Debian's golang-github-syndtr-goleveldb-dev
// (sources, each with a go.mod, under /usr/share/gocode/src). goleveldb's
// go.mod also requires ginkgo, gomega and golang.org/x/* for its own tests;
// since this module says go 1.19, its module graph is pruned and `go test`
// never looks them up (`go mod graph` and `go mod tidy` would, and fail with
// GOPROXY=off). Run ./run.sh, or:
//   GOFLAGS=-mod=mod GOPROXY=off go test -run XXX -bench . -benchtime 1x
module libkv.dev/kv/bench-goleveldb

go 1.19

require (
	github.com/syndtr/goleveldb v1.0.0
	libkv.dev/kv v0.0.0
)

require github.com/golang/snappy v0.0.1 // indirect

replace (
	github.com/golang/snappy => /usr/share/gocode/src/github.com/golang/snappy
	github.com/syndtr/goleveldb => /usr/share/gocode/src/github.com/syndtr/goleveldb
	libkv.dev/kv => ../
)
