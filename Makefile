# lodge: build, test and demo targets. Run as root on Debian 12 (bookworm).
#
#   make demo   install dependencies, build, boot a container and show it working
#   make test   unit and integration tests (integration tests need root)
#   make fuzz   every fuzz target for a short time (FUZZTIME, default 5s)
#   make bench  benchmarks side by side with LXC; writes docs/benchmarks.md
#   make lint   gofmt, go vet, staticcheck
#   make install  lodge, its companions and systemd units (PREFIX, DESTDIR); make uninstall

# Go may not be on root's PATH on a fresh machine; Debian images put it here.
GO          ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
# The tests build binaries with the same go (sudo's PATH often lacks it).
export PATH := $(dir $(GO)):$(PATH)
BIN         := bin/lodge
HELPER      := bin/lodge-helper
TOOLS       := $(CURDIR)/.tools
STATICCHECK := $(TOOLS)/staticcheck
STATICCHECK_VERSION := v0.8.2
# Debian packages a fresh machine lacks, for the runtime, the templates and the tests
# (gcc brings the sanitizer runtimes, libasan and libubsan, for make test-sanitize).
DEB_PACKAGES := busybox-static iproute2 musl-tools debootstrap xz-utils zstd gcc btrfs-progs e2fsprogs iptables dnsmasq-base iperf3 iputils-ping
# Extra packages only the benchmarks need (the LXC peer).
BENCH_PACKAGES := lxc lxc-templates lxcfs rsync uidmap
TEST_TIMEOUT ?= 60m

.PHONY: all deps build install uninstall test test-sanitize unit-test fuzz lint demo bench clean

all: build

# deps installs missing Debian packages, and CRIU >= 4.2 from Debian sid into its
# own prefix, /usr/local/lib/lodge/criu (no system library is replaced; see
# .ci/install-criu); it does nothing when all are present.
deps:
	@.ci/install-debs $(DEB_PACKAGES)
	@.ci/install-criu

# lodge itself is pure Go (no cgo: faster start-up); lodge-helper, its C half
# (see cmd/lodge-helper/main.c), is a small static C program next to it.
HELPER_CC ?= $(shell command -v musl-gcc 2>/dev/null || echo cc)
build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) ./cmd/lodge
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/lodge-monitor ./manager/monitor/lodge-monitor
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/lodge-lxcfs ./cmd/lodge-lxcfs
	$(HELPER_CC) -static -O2 -Wall -Werror -o $(HELPER) cmd/lodge-helper/*.c

# install puts lodge where a service manager runs it (docs/service.md):
#   PREFIX/bin/lodge                   a symlink to PREFIX/lib/lodge/lodge, which finds its
#   PREFIX/lib/lodge/lodge-*           companions beside its real path (os.Executable)
#   UNITDIR/lodge*.{slice,service}     the systemd units, PREFIX filled in
#   PREFIX/share/doc/lodge/            README.md, docs/*.md (as in the repo), lodge.toml.example
#   /etc/lodge/lodge.toml              the host config naming the delegated cgroup base,
#                                      only if none exists (lodge reads it there, not below PREFIX)
# It runs no apt (make deps installs the Debian packages and CRIU, which lodge finds
# in /usr/local/lib/lodge/criu whatever PREFIX is) and enables no unit. With
# DESTDIR empty on a systemd host it reloads systemd, so the units are known.
PREFIX  ?= /usr/local
DESTDIR ?=
BINDIR  := $(PREFIX)/bin
LIBDIR  := $(PREFIX)/lib/lodge
DOCDIR  := $(PREFIX)/share/doc/lodge
# systemd looks in /usr/lib and /usr/local/lib; for another PREFIX say
# UNITDIR=/etc/systemd/system.
UNITDIR ?= $(PREFIX)/lib/systemd/system
HOST_CONFIG := /etc/lodge/lodge.toml
SERVICES := lodge-lxcfs.service lodge-containers.service lodge-autostart.service lodge-serve.service
UNITS   := lodge.slice $(SERVICES)
PROGRAMS := lodge lodge-monitor lodge-lxcfs lodge-helper
DELEGATED_BASE := /lodge.slice/lodge-containers.service
install: build
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(DOCDIR)/docs $(DESTDIR)$(dir $(HOST_CONFIG))
	install -m 0755 $(addprefix bin/,$(PROGRAMS)) $(DESTDIR)$(LIBDIR)/
	ln -sfn $(LIBDIR)/lodge $(DESTDIR)$(BINDIR)/lodge
	@for u in $(UNITS); do \
		echo "cmd/lodge/dist/systemd/$$u -> $(DESTDIR)$(UNITDIR)/$$u"; \
		sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@DOCDIR@|$(DOCDIR)|g' cmd/lodge/dist/systemd/$$u > $(DESTDIR)$(UNITDIR)/$$u.tmp && \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$$u.tmp && mv $(DESTDIR)$(UNITDIR)/$$u.tmp $(DESTDIR)$(UNITDIR)/$$u || exit 1; \
	done
	install -m 0644 README.md $(DESTDIR)$(DOCDIR)/
	install -m 0644 docs/*.md $(DESTDIR)$(DOCDIR)/docs/
	install -m 0644 cmd/lodge/dist/lodge.toml $(DESTDIR)$(DOCDIR)/lodge.toml.example
	@if [ -e $(DESTDIR)$(HOST_CONFIG) ]; then \
		echo "$(DESTDIR)$(HOST_CONFIG) exists: left as it is"; \
		grep -q '^[[:space:]]*parent[[:space:]]*=[[:space:]]*"$(DELEGATED_BASE)"' $(DESTDIR)$(HOST_CONFIG) || \
		echo "warning: its [cgroup] parent is not \"$(DELEGATED_BASE)\", the cgroup systemd delegates to lodge; see $(DOCDIR)/lodge.toml.example and docs/service.md"; \
	else \
		install -m 0644 cmd/lodge/dist/lodge.toml $(DESTDIR)$(HOST_CONFIG) && echo "cmd/lodge/dist/lodge.toml -> $(DESTDIR)$(HOST_CONFIG)"; \
		if [ -z "$(DESTDIR)" ] && ls -d /sys/fs/cgroup/lodge /sys/fs/cgroup/*/lodge >/dev/null 2>&1; then \
			echo "note: containers started before ran in /lodge (the default base); they keep running there, and go below $(DELEGATED_BASE) when they next start"; fi; \
	fi
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
	@if [ -z "$(DESTDIR)" ] && [ ! -x /usr/local/lib/lodge/criu/criu ] && ! command -v criu >/dev/null; then \
		echo "note: checkpoints need CRIU 4.2 or newer: make deps installs it in /usr/local/lib/lodge/criu"; fi
	@echo "Installed. To run lodge as a service: systemctl enable --now lodge-lxcfs lodge-containers lodge-autostart (and lodge-serve for the host API)"

# uninstall removes what install put there except the host config, and refuses
# while a unit is enabled or running (its files gone, the host's shutdown could
# no longer stop the containers cleanly).
uninstall:
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then \
		for u in $(SERVICES); do \
			if systemctl -q is-active $$u || systemctl -q is-enabled $$u 2>/dev/null; then \
				echo "$$u is enabled or running: first systemctl disable --now lodge-serve lodge-autostart lodge-containers lodge-lxcfs (this stops every container)"; exit 1; \
			fi; \
		done; \
	fi
	rm -f $(DESTDIR)$(BINDIR)/lodge $(addprefix $(DESTDIR)$(LIBDIR)/,$(PROGRAMS)) $(addprefix $(DESTDIR)$(UNITDIR)/,$(UNITS))
	rm -rf $(DESTDIR)$(DOCDIR)
	@rmdir $(DESTDIR)$(LIBDIR) 2>/dev/null || true # unless make deps's criu/ is there
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
	@echo "Uninstalled; $(DESTDIR)$(HOST_CONFIG) and lodge's data (/var/lib/lodge) are left, and CRIU if make deps installed it."

test: deps build
	$(GO) vet ./...
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...
	@GO=$(GO) .ci/fuzz $(FUZZTIME)
	@$(MAKE) --no-print-directory test-sanitize

# test-sanitize runs end-to-end tests that exercise every mode of lodge-helper
# (exec, the first process, the idle watcher, the views server's supervisor and
# attach) with the helper built under AddressSanitizer and UBSan. It is a
# dynamic glibc build (the sanitizers' runtimes exist neither static nor for
# musl); its options are compiled in (cmd/lodge-helper/sanitize.c): the first
# report ends the process and lands in SANITIZE_REPORTS, and any report fails
# the run.
SANITIZE_CC      ?= gcc
SANITIZE_HELPER  := bin/lodge-helper-sanitized
SANITIZE_REPORTS := $(CURDIR)/bin/sanitizer-reports
SANITIZE_TESTS   ?= ^(TestBusyboxLifecycle|TestExec|TestExecPty|TestConsole|TestMonitorProtocolConformance|TestMonitorConsoleKeepsTypedBytes|TestViewsSurviveServerKill|TestMonitorKilled|TestMonitorOOM|TestMonitorOOMKeepsConsole)$$
test-sanitize:
	@rm -rf $(SANITIZE_REPORTS) && mkdir -p $(SANITIZE_REPORTS)
	$(SANITIZE_CC) -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all \
		-Wall -Werror -DLODGE_SANITIZE_LOG='"$(SANITIZE_REPORTS)/report"' -o $(SANITIZE_HELPER) cmd/lodge-helper/*.c
	LODGE_TEST_HELPER=$(CURDIR)/$(SANITIZE_HELPER) LODGE_TEST_SANITIZER_REPORTS=$(SANITIZE_REPORTS) \
		$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./tests -run '$(SANITIZE_TESTS)'
	@if [ -n "$$(ls -A $(SANITIZE_REPORTS))" ]; then cat $(SANITIZE_REPORTS)/*; echo "lodge-helper: sanitizer reports above"; exit 1; fi
	@echo "lodge-helper passed under -fsanitize=address,undefined"

# Every fuzz target for FUZZTIME each (make test runs them too).
FUZZTIME ?= 5s
fuzz:
	@GO=$(GO) .ci/fuzz $(FUZZTIME)

unit-test:
	$(GO) test -count=1 -short ./...

$(STATICCHECK):
	GOBIN=$(TOOLS) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

lint: $(STATICCHECK)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

# The demo uses its own lodge root, so it never touches real containers, and
# a host config whose cgroup base is lodge-demo below the demo's own cgroup on
# every hierarchy (read from /proc/self/cgroup), never a hierarchy's root. The
# Debian image is built on the first run (a minute) and reused afterwards.
DEMO_ROOT ?= /tmp/lodge-demo
demo: deps build
	@set -e; export LODGE_ROOT=$(DEMO_ROOT) LODGE_HOST_CONFIG=$(DEMO_ROOT).toml PATH="$(CURDIR)/bin:$$PATH"; \
	{ printf 'version = 1\n[cgroup]\nparent = "/lodge-demo"\n[cgroup.parents]\n'; \
	  awk -F: '{ k = $$2; if ($$1 == "0" && k == "") k = "unified"; sub(/^name=/, "", k); p = $$3; if (p == "/") p = ""; \
	    printf "\"%s\" = \"%s/lodge-demo\"\n", k, p }' /proc/self/cgroup; } > $$LODGE_HOST_CONFIG; \
	show() { printf '\n\033[1m$$ %s\033[0m\n' "$$*"; "$$@"; }; \
	lodge delete --force demo2 >/dev/null 2>&1 || true; lodge delete --force demo >/dev/null 2>&1 || true; \
	lodge network delete demo >/dev/null 2>&1 || true; \
	show lodge network create demo; \
	show lodge create demo --template debian -c limits.memory=512MiB -c limits.cpuset=0 -c limits.pids=512 -c network.0.network=demo; \
	show lodge start demo; \
	printf 'waiting for systemd to finish booting...\n'; \
	until lodge exec demo -- systemctl is-system-running --wait >/dev/null 2>&1; do sleep 0.2; done; \
	show lodge list; \
	show lodge exec demo -- systemctl is-system-running; \
	show lodge exec demo -- sh -c 'for p in /proc/[0-9]*; do echo "$${p#/proc/} $$(cat $$p/comm)"; done'; \
	show lodge exec demo -- cat /proc/self/uid_map; \
	show lodge exec demo -- id; \
	show lodge exec demo -- free -m; \
	show lodge exec demo -- nproc; \
	show lodge exec demo -- uptime; \
	echo "(free, nproc and uptime show the container's 512 MiB, 1 CPU and its own uptime)"; \
	until lodge exec demo -- networkctl --no-pager --lines=0 status eth0 2>/dev/null | grep -q DHCP4; do sleep 0.2; done; \
	show lodge exec demo -- sh -c 'networkctl --no-pager --lines=0 status eth0 | grep -E "Address|Gateway|DNS"'; \
	echo "(eth0 got the address lodge chose for its MAC from the network's dnsmasq, by DHCP at boot)"; \
	pid=$$(lodge info demo --format json | sed -n 's/.*"pid": \([0-9]*\).*/\1/p' | head -1); \
	show ps -o user,pid,comm -p $$pid; \
	echo "(on the host, the container's systemd runs as an unprivileged uid)"; \
	show lodge exec demo -- sh -c 'echo "written before the checkpoint, pid $$$$" > /dev/shm/note; sleep 100000 >/dev/null 2>&1 </dev/null &'; \
	show lodge checkpoint --stop demo; \
	show lodge restore demo; \
	show lodge exec demo -- sh -c 'systemctl is-system-running; cat /dev/shm/note; pidof sleep'; \
	echo "(checkpointed with CRIU and restored: systemd running, its tmpfs and processes as they were, the same NIC)"; \
	show lodge stop demo; \
	show lodge snapshot create demo clean; \
	show lodge copy demo demo2 --snapshot; \
	show lodge start demo2; \
	show lodge exec demo2 -- hostname; \
	echo "(a copy-on-write clone: its own hostname, machine-id and id range, sharing the image's files)"; \
	show lodge stop demo2; \
	show lodge snapshot list demo; \
	show lodge list; \
	show lodge delete demo2; \
	show lodge delete demo; \
	show lodge network delete demo; \
	lodge lxcfs stop; \
	find /sys/fs/cgroup -maxdepth 8 -depth -type d \( -path '*/lodge-demo/.monitor' -o -path '*/lodge-demo' \) -exec rmdir {} + 2>/dev/null || true; \
	printf '\nDemo done: Debian booted systemd as pid 1, unprivileged, and was removed.\n'

# make bench masks lxc-net (LXC's NAT bridge, on systemd hosts): the benchmark's LXC
# containers have no network or one on a bridge the benchmark makes itself, never NAT.
# BENCH_ARGS adds flags, e.g. only the network rows, printed, docs left alone:
#   sudo make bench BENCH_ARGS='-only network -out='
BENCH_ARGS ?=
bench: deps build
	@if [ -d /run/systemd/system ]; then systemctl mask lxc-net.service >/dev/null 2>&1 || true; fi
	@.ci/install-debs $(BENCH_PACKAGES)
	CGO_ENABLED=0 $(GO) build -o bin/lodge-procread ./cmd/lodge-bench/procread
	CGO_ENABLED=0 $(GO) build -o bin/lodge-memhog ./cmd/lodge-bench/memhog
	$(GO) run ./cmd/lodge-bench -lodge $(CURDIR)/$(BIN) -procread $(CURDIR)/bin/lodge-procread -memhog $(CURDIR)/bin/lodge-memhog -out docs/benchmarks.md $(BENCH_ARGS)

clean:
	rm -rf bin .tools
