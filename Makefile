# The README's two commands:  make run  and  make test.
# Everything else here is what those two are made of.

BUILD       ?= build
ASAN_BUILD  ?= build-asan
FUZZ_BUILD  ?= build-fuzz
JOBS        ?= $(shell nproc)
FUZZ_SECONDS ?= 10

.PHONY: all deps bench-deps build run run-node example test test-asan fuzz bench bench-node bench-cluster install clean

all: build

deps:
	@sh scripts/install-deps.sh

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKV_BUILD_TESTS=ON -DKV_BUILD_TOOLS=ON -DKV_BUILD_EXAMPLES=ON
	cmake --build $(BUILD) -j $(JOBS)

# The main job: a 3-node cluster on 127.0.0.1 serving the HTTP API, until
# Ctrl-C.
run: build
	sh scripts/run-cluster.sh $(BUILD)

# One kvd alone (a cluster of one), until Ctrl-C.
run-node: build
	sh scripts/run-node.sh $(BUILD)

# The embedded example, on a fresh store.
example: build
	rm -rf $(BUILD)/demo.kv
	$(BUILD)/examples/example_embedded $(BUILD)/demo.kv

# The whole suite: unit, API, crash and packaging tests under ctest.
test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# The same suite built with AddressSanitizer and UndefinedBehaviorSanitizer.
test-asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DKV_SANITIZE=ON -DKV_BUILD_TESTS=ON
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j $(JOBS)

# Every libFuzzer target for FUZZ_SECONDS, starting from its committed
# corpus, JOBS of them at once (each fuzzer runs on one core). Fails when
# any target fails; its output says which.
fuzz: deps
	cmake -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
	  -DKV_FUZZ=ON -DKV_SANITIZE=ON -DKV_BUILD_TESTS=OFF -DKV_BUILD_TOOLS=OFF -DKV_BUILD_EXAMPLES=OFF
	cmake --build $(FUZZ_BUILD) -j $(JOBS)
	ls fuzz/corpus | xargs -P $(JOBS) -I NAME sh -c '\
	  work=$$(mktemp -d); \
	  $(FUZZ_BUILD)/fuzz/fuzz_NAME -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    $$work fuzz/corpus/NAME > $$work.log 2>&1; rc=$$?; \
	  echo "== fuzz_NAME: exit $$rc"; tail -n 25 $$work.log; rm -rf $$work $$work.log; \
	  exit $$rc'

bench-deps:
	@sh scripts/install-deps.sh bench

# kvbench against RocksDB's own db_bench (see docs/BENCHMARKS.md).
bench: build bench-deps
	sh tools/kvbench/compare-rocksdb.sh $(BUILD)

# One kvd over the binary protocol and HTTP against redis-server with
# redis-benchmark (see docs/BENCHMARKS.md).
bench-node: build bench-deps
	sh tools/kvbench/compare-redis.sh $(BUILD)

# A 3-node cluster at ONE, QUORUM and ALL against a 3-node etcd and Redis
# (see docs/BENCHMARKS.md).
bench-cluster: build bench-deps
	python3 tools/kvbench/compare-cluster.py $(BUILD)

install: build
	cmake --install $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
