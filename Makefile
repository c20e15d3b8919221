# lodge: build, test and demo targets. Run as root on Debian 12 (bookworm).
#
#   make demo   install dependencies, build, boot a container and show it working
#   make test   unit and integration tests (integration tests need root)
#   make bench  benchmarks side by side with LXC; writes docs/benchmarks.md
#   make lint   gofmt, go vet, staticcheck

GO          ?= go
BIN         := bin/lodge
TOOLS       := $(CURDIR)/.tools
STATICCHECK := $(TOOLS)/staticcheck
STATICCHECK_VERSION := v0.8.2
# Debian packages a fresh machine lacks, for the runtime, the templates and the tests.
DEB_PACKAGES := busybox-static iproute2
# Extra packages only the benchmarks need (the LXC peer).
BENCH_PACKAGES := lxc uidmap hyperfine
TEST_TIMEOUT ?= 60m
export CGO_ENABLED := 1

.PHONY: all deps build test unit-test lint demo bench clean

all: build

# deps installs missing Debian packages; it does nothing when all are present.
deps:
	@.ci/install-debs $(DEB_PACKAGES)

build:
	$(GO) build -trimpath -o $(BIN) ./cmd/lodge

test: deps build
	$(GO) vet ./...
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

unit-test:
	$(GO) test -count=1 -short ./...

$(STATICCHECK):
	GOBIN=$(TOOLS) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

lint: $(STATICCHECK)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

demo: deps build
	@scripts/demo

bench: deps build
	@.ci/install-debs $(BENCH_PACKAGES)
	$(GO) run ./cmd/lodge-bench -lodge $(CURDIR)/$(BIN) -out docs/benchmarks.md

clean:
	rm -rf bin .tools
