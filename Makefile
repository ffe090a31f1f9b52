# Plasm build and test entry points. `make demo` runs the main job,
# `make test` the test suite; everything else is a building block.
GO      ?= go
BIN     := bin
WASMDIR := build/wasm
WATS    := $(wildcard examples/wat/*.wat)
WASM    := $(WASMDIR)/hello.wasm $(patsubst examples/wat/%.wat,$(WASMDIR)/%.wasm,$(WATS))
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/phase-protocol/plasm/node/version.Version=$(VERSION)

.PHONY: all build wasm demo test bench bench-process vet clean php-test

all: build wasm

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

wasm: $(WASM)

$(WASMDIR)/hello.wasm: examples/hello/main.go
	@mkdir -p $(WASMDIR)
	GOOS=wasip1 GOARCH=wasm CGO_ENABLED=0 $(GO) build -trimpath -o $@ ./examples/hello

$(WASMDIR)/%.wasm: examples/wat/%.wat
	@mkdir -p $(WASMDIR)
	wat2wasm $< -o $@

# The main job: the simulator's default scenario (30 real nodes in one
# process, virtual time), summary on the terminal, report and plots in
# build/demo. Then a local run whose receipt is verified.
demo: build wasm
	./bin/plasmsim run scenarios/sim/smoke.yaml --out build/demo
	./scripts/demo.sh

test: build wasm vet
	$(GO) test -count=1 -timeout 15m ./...

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }

# The PHP client against three real daemons (needs php-cli with sodium).
php-test: build wasm
	examples/php/run-tests.sh

# Whole-process timing of plasmd run beside Node.js WASI (needs hyperfine).
bench-process: build wasm
	scripts/bench-process.sh

bench: build wasm
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf $(BIN) build
