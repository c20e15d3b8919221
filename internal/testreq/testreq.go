// Package testreq turns a test's "this machine lacks X" skip into a failure
// where the machine is known to have X. A test that needs a feature the
// machine may lack (root, /dev/fuse, a second CPU, ...) calls Skip with the
// feature's name; on a developer's machine that skips with the reason, and
// on a CI machine that lists the feature in LODGE_TEST_REQUIRE it fails, so
// a broken CI machine cannot pass a suite by skipping it.
//
//	LODGE_TEST_REQUIRE=root,fuse,cpus2 go test ./...
//
// "all" requires every feature in Features. .ci/run sets the list for the
// kind of machine CI runs on; README.md ("Tests") lists the names.
package testreq

import (
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
)

// Env names the required features, comma-separated.
const Env = "LODGE_TEST_REQUIRE"

// Features are the names a test may skip for, and what each one means.
var Features = map[string]string{
	"root":     "tests run as root (every integration test needs it)",
	"userns":   "root can make user namespaces that map host ids",
	"fuse":     "/dev/fuse exists (the /proc and /sys views)",
	"overlay":  "root can mount overlayfs (the idmap fallback test)",
	"cpus2":    "at least 2 CPUs (CPU quota and cpuset views)",
	"cpuset":   "a cpuset cgroup controller",
	"pids":     "a pids cgroup controller",
	"cgroup2":  "a cgroup2 hierarchy",
	"hybrid":   "hybrid cgroups (v1 controllers, cgroup2 without them)",
	"noswap":   "no swap on the host (memory limits are then exact)",
	"blockdev": "host root can open a block device (device-rule tests)",
	"nsenter":  "util-linux's nsenter",
	"unshare":  "util-linux's unshare with network and time namespaces (a test's own namespaces)",
	"ping":     "a ping command (iputils-ping): the restore network lock test",
	"iptables": "iptables-nft and iptables-legacy (Debian's iptables): the network host-check tests",
	"dnsmasq":  "Debian's dnsmasq-base (/usr/sbin/dnsmasq and its user): the DHCP and DNS tests",
	"iperf3":   "Debian's iperf3: the bandwidth limit test",
	"amd64":    "an x86_64 machine (seccomp expectations)",
	"btrfs":    "mkfs.btrfs (btrfs-progs) and loop devices: storage tests on a loop-mounted btrfs file",
	"criu":     "CRIU 4.2 or newer, found as lodge finds it (make deps installs it in /usr/local/lib/lodge/criu): the checkpoint tests",
	"ia32":     "the kernel runs i386 system calls of 64-bit programs (int 0x80), which the seccomp filter must refuse",
	"systemd":  "systemd-analyze and the host's units (Debian's systemd package), and make: the make install test checks the units offline",
}

// Skip skips t with reason, or fails it when feature is required.
func Skip(t testing.TB, feature, reason string) {
	t.Helper()
	if _, ok := Features[feature]; !ok {
		t.Fatalf("testreq: unknown feature %q (see Features)", feature)
	}
	if Required(feature) {
		t.Fatalf("required feature %q is missing (%s=%s): %s", feature, Env, os.Getenv(Env), reason)
	}
	t.Skip("SKIPPED: " + reason)
}

// Skipf is Skip with a formatted reason.
func Skipf(t testing.TB, feature, format string, args ...any) {
	t.Helper()
	Skip(t, feature, fmt.Sprintf(format, args...))
}

// Required reports whether the environment requires feature.
func Required(feature string) bool {
	names := required()
	return slices.Contains(names, feature) || slices.Contains(names, "all")
}

func required() []string {
	var names []string
	for _, n := range strings.Split(os.Getenv(Env), ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	return names
}

// Check reports names in the environment that are no feature: a typo
// would otherwise require nothing.
func Check() error {
	var unknown []string
	for _, n := range required() {
		if _, ok := Features[n]; !ok && n != "all" {
			unknown = append(unknown, n)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	known := make([]string, 0, len(Features))
	for n := range Features {
		known = append(known, n)
	}
	sort.Strings(known)
	return fmt.Errorf("%s names unknown features %s; known: %s, all",
		Env, strings.Join(unknown, ","), strings.Join(known, ","))
}
