// Its own module, so that libkv.dev/kv gains no dependency. Offline only:
// goleveldb and snappy come from Debian's golang-github-syndtr-goleveldb-dev
// (sources under /usr/share/gocode/src). goleveldb's go.mod also requires
// ginkgo, gomega and golang.org/x/* for its own tests; this benchmark compiles
// none of their packages, so each is replaced by an empty stub module
// (stubs/*/go.mod) to keep the module graph offline. Run:
//   GOFLAGS=-mod=mod GOPROXY=off go test -run XXX -bench .
module libkv.dev/kv/bench-goleveldb

go 1.19

require (
	github.com/syndtr/goleveldb v1.0.0
	libkv.dev/kv v0.0.0
)

require github.com/golang/snappy v0.0.1 // indirect

replace (
	github.com/golang/snappy => /usr/share/gocode/src/github.com/golang/snappy
	github.com/onsi/ginkgo => ./stubs/github.com_onsi_ginkgo
	github.com/onsi/gomega => ./stubs/github.com_onsi_gomega
	github.com/syndtr/goleveldb => /usr/share/gocode/src/github.com/syndtr/goleveldb
	golang.org/x/net => ./stubs/golang.org_x_net
	golang.org/x/sys => ./stubs/golang.org_x_sys
	golang.org/x/text => ./stubs/golang.org_x_text
	golang.org/x/xerrors => ./stubs/golang.org_x_xerrors
	libkv.dev/kv => ../
)
