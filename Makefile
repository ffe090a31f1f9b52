# Plasm build and test entry points. `make demo` runs the main job,
# `make test` the test suite; everything else is a building block.
GO      ?= go
BIN     := bin
WASMDIR := build/wasm
WATS    := $(wildcard examples/wat/*.wat)
WATPKGS ?= ./...
WASM    := $(WASMDIR)/hello.wasm $(patsubst examples/wat/%.wat,$(WASMDIR)/%.wasm,$(WATS))
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/phase-protocol/plasm/node/version.Version=$(VERSION)
# The node library is the root module; the simulator, its command, the
# conformance suite and the packaging tools are modules of their own, so
# their dependencies (simnet, plotting, YAML, nfpm) stay out of the
# library's go.mod.
MODULES := . sim cmd/plasmsim conformance packaging
# Release builds: static, -trimpath, stripped, version by -ldflags, and
# package timestamps from the last commit, so two builds give the same bytes.
ARCHES  := amd64 arm64
RELDIR  := build/release
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)

.PHONY: all build wasm wat demo test bench bench-process vet clean php-test \
	binaries deb release check-tools package-test conformance scenarios

all: build wasm

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/plasmd
	cd cmd/plasmsim && $(GO) build -ldflags '$(LDFLAGS)' -o ../../$(BIN)/ .

wasm: $(WASM)

$(WASMDIR)/hello.wasm: examples/hello/main.go
	@mkdir -p $(WASMDIR)
	GOOS=wasip1 GOARCH=wasm CGO_ENABLED=0 $(GO) build -trimpath -o $@ ./examples/hello

# The hand-written modules are committed assembled beside their .wat source
# (examples/wat/*.wasm), so building needs no WebAssembly toolchain.
$(WASMDIR)/%.wasm: examples/wat/%.wasm
	@mkdir -p $(WASMDIR)
	cp $< $@

# Re-assembles the committed WAT modules with wat2wasm (wabt) after a .wat
# changes, and records new inline WAT sources of tests (testdata/wat).
wat:
	@command -v wat2wasm >/dev/null || { echo "make wat: wat2wasm not found (apt-get install wabt)"; exit 2; }
	for f in $(WATS); do wat2wasm $$f -o $${f%.wat}.wasm; done
	PLASM_WAT2WASM=1 $(GO) test -count=1 $(WATPKGS)

# The main job: the simulator's default scenario (30 real nodes in one
# process, virtual time), summary on the terminal, report and plots in
# build/demo. Then a local run whose receipt is verified.
demo: build wasm
	./bin/plasmsim run scenarios/sim/smoke.yaml --out build/demo
	./scripts/demo.sh

# The suite needs Go and nothing else: checks that need other tools
# (wat2wasm, systemd-analyze) are built with -tags tools and run by
# check-tools, which CI runs with the tools installed.
# The conformance module runs its client-side tests with -short here (a
# subset without the cases that hold a client to its deadline); make
# conformance runs them whole.
test: build wasm vet
	for m in $(MODULES); do \
		short=; [ $$m = conformance ] && short=-short; \
		(cd $$m && $(GO) test -count=1 -timeout 15m $$short ./...) || exit 1; \
	done

check-tools:
	$(GO) test -count=1 -tags tools -run 'ExampleModules|RecordedSources' ./internal/testwasm/
	cd packaging && $(GO) test -count=1 -tags tools -run 'Systemd' .

vet:
	for m in $(MODULES) scenarios/docker; do (cd $$m && $(GO) vet ./...) || exit 1; done
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }

# The PHP client against three real daemons (needs php-cli with sodium).
php-test: build wasm
	@command -v php >/dev/null || { echo "make php-test: php not found (apt-get install php-cli)"; exit 2; }
	examples/php/run-tests.sh

# Whole-process timing of plasmd run beside Node.js WASI (needs hyperfine,
# node and python3).
bench-process: build wasm
	@for t in hyperfine node python3; do command -v $$t >/dev/null || { echo "make bench-process: $$t not found (apt-get install hyperfine nodejs python3)"; exit 2; }; done
	scripts/bench-process.sh

bench: build wasm
	for m in $(MODULES); do (cd $$m && $(GO) test -run '^$$' -bench . -benchmem ./...) || exit 1; done

# plasmd for linux/amd64 and linux/arm64, as packaged.
binaries:
	for a in $(ARCHES); do \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$a $(GO) build -trimpath -buildvcs=false \
			-ldflags '-s -w $(LDFLAGS)' -o $(RELDIR)/plasmd-linux-$$a ./cmd/plasmd || exit 1; \
	done

# The .deb packages (nfpm, pinned in packaging/go.mod).
deb: binaries
	rm -f $(RELDIR)/*.deb
	for a in $(ARCHES); do \
		(cd packaging && SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) $(GO) run ./cmd/mkdeb -arch $$a \
			-binary ../$(RELDIR)/plasmd-linux-$$a -version $(VERSION) -out ../$(RELDIR)) || exit 1; \
	done

# Binaries and packages with their SHA-256 sums (sha256sum -c SHA256SUMS).
release: deb
	cd $(RELDIR) && sha256sum plasmd-linux-* *.deb > SHA256SUMS && cat SHA256SUMS

# The amd64 package installed, run and removed in a debootstrapped Debian
# under Docker (needs docker and debootstrap).
package-test: deb
	packaging/install-test.sh $(RELDIR)/plasmd_*_amd64.deb

# The conformance suite's heavier targets, reports in build/conformance
# (the in-process run is part of make test): plasmd through the launch
# contract, every mutant (each must be killed), the client cases' bite
# test in full (every broken reference-client variant fails), and the client
# cases against plasmd submit, over the wire and through a played API (the PHP
# client's run is in .ci/run, as it needs php-cli).
CONFDIR := build/conformance
conformance: build
	@mkdir -p $(CONFDIR)
	./bin/plasmsim conformance --launch 'PLASMD=$(CURDIR)/bin/plasmd $(CURDIR)/conformance/launch/plasmd.sh' \
		--json $(CONFDIR)/launch.json --junit $(CONFDIR)/launch.xml --html $(CONFDIR)/launch.html
	./bin/plasmsim conformance --mutants \
		--json $(CONFDIR)/mutants.json --junit $(CONFDIR)/mutants.xml --html $(CONFDIR)/mutants.html
	cd conformance && $(GO) test -count=1 -timeout 20m -run 'TestClientMutantsBite|TestAPICasesBite' -v . \
		> ../$(CONFDIR)/bite.txt 2>&1 || { tail -100 ../$(CONFDIR)/bite.txt; exit 1; }
	grep -E '^(--- |ok)' $(CONFDIR)/bite.txt
	cd conformance && $(GO) build -o ../$(BIN)/plasmd-submit ./clients/plasmd-submit
	./bin/plasmsim conformance --client 'PLASMD=$(CURDIR)/bin/plasmd $(CURDIR)/bin/plasmd-submit' \
		--json $(CONFDIR)/client.json --junit $(CONFDIR)/client.xml --html $(CONFDIR)/client.html
	./bin/plasmsim conformance --api-client 'PLASMD=$(CURDIR)/bin/plasmd $(CURDIR)/bin/plasmd-submit' \
		--json $(CONFDIR)/api-client.json --junit $(CONFDIR)/api-client.xml --html $(CONFDIR)/api-client.html

# The Docker scenarios (docker/README.md): images FROM scratch built once,
# then LAN, mixed-arch, NAT/relay, hole punching, faults and conformance
# as Go tests with testcontainers-go. Needs a Docker engine and
# qemu-user-static; not part of `make test`. Summary: build/scenarios/.
scenarios: build wasm binaries
	docker/build.sh
	cd scenarios/docker && TESTCONTAINERS_RYUK_DISABLED=true $(GO) test -count=1 -timeout 15m -v $(SCENARIOFLAGS) ./...

clean:
	rm -rf $(BIN) build
