# HakuRiver HA. `make run` starts the embedded cluster; `make test` runs the
# whole suite (unit + multi-process integration) exactly as CI does.
GO       ?= go
SHELL    := /bin/bash
BIN      := bin/hakuriver
# SHIMBIN is the supervisor of native tasks alone (cmd/hakuriver-shim): a
# runner uses it when it sits beside hakuriver (install both together).
SHIMBIN  := bin/hakuriver-shim
# SKEWBIN is a test-only build whose wall clock can be shifted (the chaos
# tests' skewed replica; cluster/clock): never install it.
SKEWBIN  := bin/hakuriver-clockskew
PKGS     := ./...
TESTFLAGS ?=
# MAX_SKIPS fails `make test` when more tests skip (-1: report only); CI sets 0.
MAX_SKIPS ?= -1

.PHONY: build build-skew run test test-unit test-deps test-images lint bench chaos fuzz mutate clean

build:
	$(GO) build -o $(BIN) ./cmd/hakuriver
	$(GO) build -o $(SHIMBIN) ./cmd/hakuriver-shim

build-skew:
	$(GO) build -tags hakuriver_clockskew -o $(SKEWBIN) ./cmd/hakuriver

run: build
	./$(BIN) dev

# test-deps installs or builds what the tests need when missing.
test-deps:
	@bash .ci/test-deps.sh
	@if docker info >/dev/null 2>&1; then $(MAKE) --no-print-directory test-images; fi

# test-images builds the local Docker images the tests use (no registry).
test-images:
	@bash .ci/test-images.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet -tags integration $(PKGS)

# test prints one line per package, the output of failed tests, and every
# skipped test with its reason (integration/cmd/testreport).
test: test-deps build build-skew lint
	@$(GO) build -o bin/testreport ./integration/cmd/testreport
	set -o pipefail; HAKURIVER_BIN=$(CURDIR)/$(BIN) HAKURIVER_SKEW_BIN=$(CURDIR)/$(SKEWBIN) $(GO) test -json -race -tags integration -timeout 20m -count=1 $(TESTFLAGS) $(PKGS) \
		| bin/testreport -max-skips $(MAX_SKIPS)

test-unit:
	$(GO) test -race -count=1 $(PKGS)

# bench prints the cluster benchmark's tables (BENCH_ARGS: e.g. -quick
# -sections runners), then the runner-side start of a native `true` (Go
# benchmarks, as root for cgroups): StartTrue is the native executor's
# Start, RunTrue a runner's /run round trip against a stub host; run-p50
# is the figure with the target of 3 ms. Then one scheduling pass over a
# long queue (BenchmarkPlan).
BENCH_ARGS ?=
bench: build
	HAKURIVER_BIN=$(CURDIR)/$(BIN) $(GO) run -tags integration ./integration/cmd/bench $(BENCH_ARGS)
	@echo; echo "Runner-side start of a native \`true\` on $$(nproc) cores (ms; target run-p50 <= 3):"
	@set -o pipefail; HAKURIVER_SHIM_BINARY=$(CURDIR)/$(SHIMBIN) HAKURIVER_BIN=$(CURDIR)/$(BIN) $(GO) test -run '^$$' \
		-bench 'StartTrue|RunTrue' -benchtime 100x ./runner/executor/native ./runner | grep -E '^(Benchmark|FAIL)'
	@echo; echo "One scheduling pass, 100 nodes and 10,000 pending tasks (most fit no node):"
	@set -o pipefail; $(GO) test -run '^$$' -bench 'Plan$$' -benchtime 20x ./scheduler | grep -E '^(Benchmark|FAIL)'

# chaos runs a randomized fault campaign (network partitions in namespaces,
# SIGKILL) for DURATION with the fault schedule drawn from SEED (0: from
# the clock, printed), checks the client history after every fault and
# prints a summary table; it exits non-zero on any anomaly. Needs root.
DURATION ?= 5m
SEED ?= 0
# FAULTS restricts the campaign to some fault kinds (comma-separated; empty: all).
FAULTS ?=
chaos: build build-skew
	HAKURIVER_BIN=$(CURDIR)/$(BIN) HAKURIVER_SKEW_BIN=$(CURDIR)/$(SKEWBIN) $(GO) run -tags integration ./integration/cmd/chaos -duration $(DURATION) -seed $(SEED) -faults "$(FAULTS)"

# fuzz runs every fuzz target (func FuzzX in a _test.go file) in turn for
# FUZZTIME each (.ci/fuzz.sh); `go test` alone runs their checked-in seeds
# (testdata/fuzz/FuzzX/) as ordinary tests. A failing input is written to
# the package's testdata/fuzz/FuzzX/: keep it there once fixed.
FUZZTIME ?= 20s
fuzz:
	@GO=$(GO) bash .ci/fuzz.sh $(FUZZTIME)

# mutate breaks named behaviours one at a time in a scratch copy and shows
# which tests catch each (.ci/mutate.sh); run after `make test-deps`.
mutate:
	@bash .ci/mutate.sh

clean:
	rm -rf bin
