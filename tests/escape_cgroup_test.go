package tests

// The escape suite's cgroup and device part: root inside a container tries
// what an attacker would, and every attempt must fail. A probe script prints
// ESCAPED for each attempt that worked and PROBED at its end, so a probe
// that did not run cannot pass for a defence.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"lodge/internal/cgroup"
	"lodge/internal/testreq"

	"golang.org/x/sys/unix"
)

// probeFuncs are shell helpers for probe scripts: try runs a command that
// must fail; control runs one that must work.
const probeFuncs = `
try() { if "$@" >/dev/null 2>&1 </dev/null; then echo "ESCAPED: $*"; fi; }
control() { if ! "$@" >/dev/null 2>&1 </dev/null; then echo "CONTROL FAILED: $*"; fi; }
`

// probe runs script as root in container name and fails the test for every
// attempt that worked, or if the script did not run to its end.
func (e *env) probe(name, what, script string) string {
	e.t.Helper()
	r := e.run("exec", name, "--", "sh", "-c", probeFuncs+script+"\necho PROBED")
	if !strings.Contains(r.stdout, "PROBED") {
		e.t.Errorf("%s in %s: the probe did not run to its end: %s", what, name, r)
	}
	for _, line := range strings.Split(r.stdout, "\n") {
		if strings.HasPrefix(line, "ESCAPED") || strings.HasPrefix(line, "CONTROL FAILED") {
			e.t.Errorf("%s in %s: %s", what, name, line)
		}
	}
	return r.stdout
}

// plantedNode is a device node host root leaves where a container finds it.
type plantedNode struct {
	name         string
	mode         uint32 // unix.S_IFCHR or unix.S_IFBLK
	major, minor uint32
}

func hostNodes(t *testing.T) []plantedNode {
	major, minor := testreq.HostBlockDevice(t)
	return []plantedNode{
		{"planted-mem", unix.S_IFCHR, 1, 1},
		{"planted-kmsg", unix.S_IFCHR, 1, 11},
		{"planted-disk", unix.S_IFBLK, major, minor},
		{"planted-null", unix.S_IFCHR, 1, 3}, // allowed: the control
	}
}

// plant makes the nodes in dir, mode 0666, so that only the kernel's device
// checks (not file permissions) stand in the way, and an empty file
// bound-NAME beside each, where bindNodes mounts it later.
func plant(t *testing.T, dir string, nodes []plantedNode) {
	t.Helper()
	for _, n := range nodes {
		path := filepath.Join(dir, n.name)
		if err := unix.Mknod(path, n.mode|0o666, int(unix.Mkdev(n.major, n.minor))); err != nil {
			t.Fatalf("plant %s: %v", path, err)
		}
		if err := os.Chmod(path, 0o666); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "bound-"+n.name), nil, 0o666); err != nil {
			t.Fatal(err)
		}
	}
}

// bindNodes binds host-made nodes onto /bound-NAME in the running container
// (pid is its init), as an operator's careless bind mount would. The root
// filesystem is mounted nodev, so nodes planted in it fail there already;
// these bind mounts come from a host file system without nodev, so only the
// device cgroup stands between them and the container.
func bindNodes(t *testing.T, pid int, nodes []plantedNode) {
	t.Helper()
	if _, err := exec.LookPath("nsenter"); err != nil {
		testreq.Skip(t, "nsenter", "nsenter (util-linux) is missing; it binds host nodes into the container")
	}
	dir := t.TempDir()
	// The probe is static: it runs in a busybox container's mount namespace,
	// where this (maybe dynamically linked) test binary's loader is missing.
	exe, err := os.Open(buildProbe(t))
	if err != nil {
		t.Fatal(err)
	}
	defer exe.Close()
	for _, n := range nodes {
		path := filepath.Join(dir, n.name)
		if err := unix.Mknod(path, n.mode|0o666, int(unix.Mkdev(n.major, n.minor))); err != nil {
			t.Fatal(err)
		}
		fd, err := unix.OpenTree(unix.AT_FDCWD, path, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
		if err != nil {
			t.Fatalf("open_tree %s: %v", path, err)
		}
		tree := os.NewFile(uintptr(fd), path)
		// -p as well, so that /proc/self/fd/4 inside is our own. A Go
		// program cannot enter a mount namespace itself (its threads share
		// their fs), so nsenter enters it and executes the probe there.
		cmd := exec.Command("nsenter", "-t", strconv.Itoa(pid), "-m", "-p", "--", "/proc/self/fd/4", "move-mount", "/bound-"+n.name)
		cmd.ExtraFiles = []*os.File{tree, exe}
		out, err := cmd.CombinedOutput()
		tree.Close()
		if err != nil {
			t.Fatalf("bind %s into the container: %v: %s", n.name, err, out)
		}
	}
}

// deviceProbe is the script that tries the host's devices: mknod and use,
// then every planted node: in the rootfs (planted before start) and bound
// from the host. /bound-planted-null is the control: a null device bound
// the same way must open, or the test would prove nothing.
func deviceProbe(nodes []plantedNode) string {
	var s strings.Builder
	s.WriteString("control sh -c 'exec 3</dev/null 4>/dev/zero 5</dev/urandom'\n")
	s.WriteString("control sh -c 'exec 3</bound-planted-null'\n")
	s.WriteString("try sh -c 'mknod /tmp/m1 c 1 1 && head -c1 /tmp/m1'\n")
	s.WriteString("try sh -c 'mknod /tmp/m11 c 1 11 && head -c1 /tmp/m11'\n")
	for _, n := range nodes {
		if n.name != "planted-null" {
			fmt.Fprintf(&s, "try sh -c 'exec 3</%s'\n", n.name)
			fmt.Fprintf(&s, "try sh -c 'exec 3</bound-%s'\n", n.name)
		}
	}
	// The v1 rules cannot be widened from inside, in the group or below it.
	s.WriteString("for d in /sys/fs/cgroup/devices /sys/fs/cgroup/devices/probe; do\n")
	s.WriteString("  [ -d /sys/fs/cgroup/devices ] || break\n")
	s.WriteString("  mkdir -p /sys/fs/cgroup/devices/probe 2>/dev/null\n")
	s.WriteString("  try sh -c \"echo a > $d/devices.allow\"\n")
	s.WriteString("  try sh -c \"echo 'b *:* rwm' > $d/devices.allow\"\n")
	s.WriteString("done\nrmdir /sys/fs/cgroup/devices/probe 2>/dev/null\n")
	return s.String()
}

// checkDeviceRules checks, from the host, that the layers meant to be on
// are: the v1 allow-list and the cgroup2 device program.
func checkDeviceRules(t *testing.T, i info, wantV1, wantBPF bool) {
	t.Helper()
	if dir, ok := i.Cgroups["devices"]; ok {
		data, _ := os.ReadFile(filepath.Join(dir, "devices.list"))
		restricted := !strings.Contains(string(data), "a *:* rwm")
		if restricted != wantV1 {
			t.Errorf("v1 devices.list of %s restricted = %v, want %v:\n%s", i.Name, restricted, wantV1, data)
		}
	}
	progs, err := cgroup.Open(i.Cgroups).DevicePrograms()
	if err != nil {
		t.Fatalf("query the device programs of %s: %v", i.Name, err)
	}
	if _, ok := i.Cgroups[cgroup.UnifiedKey]; ok && (len(progs) == 1) != wantBPF {
		t.Errorf("%s has %d device programs, want one: %v", i.Name, len(progs), wantBPF)
	}
}

// devicesLayers are the ways the device rules are tried: both layers, and
// each alone (the other switched off by a test-only failpoint), as far as
// this host has them.
func devicesLayers(t *testing.T) []struct{ name, failpoint string } {
	layers := []struct{ name, failpoint string }{{"both", ""}}
	hasV1 := len(cgroupMounts("devices")) > 0
	hasV2 := len(cgroupMounts("cgroup2")) > 0
	if hasV1 && hasV2 {
		layers = append(layers,
			struct{ name, failpoint string }{"v1 only", "skip-devices-bpf"},
			struct{ name, failpoint string }{"bpf only", "skip-devices-v1"})
	}
	return layers
}

// cgroupMounts lists the host's cgroup mounts with kind ("cgroup2" or a v1
// controller) in their options or type.
func cgroupMounts(kind string) []string {
	data, _ := os.ReadFile("/proc/self/mountinfo")
	var found []string
	for _, line := range strings.Split(string(data), "\n") {
		_, post, ok := strings.Cut(line, " - ")
		fields := strings.Fields(post)
		if !ok || len(fields) < 3 {
			continue
		}
		if fields[0] == kind || fields[0] == "cgroup" && strings.Contains(","+fields[2]+",", ","+kind+",") {
			found = append(found, line)
		}
	}
	return found
}

// TestEscapeDevicesBusybox: mknod of host devices fails, and device nodes
// host root planted in the rootfs or bound in cannot be opened, with both
// device layers and with each alone.
func TestEscapeDevicesBusybox(t *testing.T) {
	e := newEnv(t)
	nodes := hostNodes(t)
	for n, layer := range devicesLayers(t) {
		t.Run(layer.name, func(t *testing.T) {
			name := "dev" + strconv.Itoa(n)
			e.createBusybox(name)
			e.editRootfs(name, func(dir string) { plant(t, dir, nodes) })
			if layer.failpoint != "" {
				e.extraEnv = []string{"LODGE_FAILPOINT=" + layer.failpoint}
			}
			e.must("start", name)
			e.extraEnv = nil
			i := e.info(name)
			checkDeviceRules(t, i, layer.failpoint != "skip-devices-v1", layer.failpoint != "skip-devices-bpf")
			bindNodes(t, i.PID, nodes)
			e.probe(name, "host devices ("+layer.name+")", deviceProbe(nodes))
			e.must("stop", "--force", name)
		})
	}
}

// TestEscapeDevicesDebian: the same in a Debian container with systemd.
func TestEscapeDevicesDebian(t *testing.T) {
	e := newEnv(t)
	nodes := hostNodes(t)
	e.must("create", "dd1", "--template", "debian")
	e.editRootfs("dd1", func(dir string) { plant(t, dir, nodes) })
	e.must("start", "dd1")
	waitRunning(t, e, "dd1")
	i := e.info("dd1")
	checkDeviceRules(t, i, true, true)
	bindNodes(t, i.PID, nodes)
	e.probe("dd1", "host devices", deviceProbe(nodes))
}

// TestEscapeCgroup: container root cannot set a release agent, raise its
// limits, widen its devices or leave its cgroup, through the cgroup
// filesystems it is given or fresh ones it mounts.
func TestEscapeCgroup(t *testing.T) {
	e := newEnv(t)
	e.createBusybox("cg1", "limits.memory=256MiB", "limits.cpu=0.5")
	e.must("start", "cg1")
	before := limitFiles(e.info("cg1"))
	if !strings.Contains(before, "pids.max=2048") {
		t.Fatalf("the host sees no pids limit on cg1: %s", before)
	}
	e.probe("cg1", "release agent", `
for f in $(find /sys/fs/cgroup -name release_agent 2>/dev/null); do try sh -c "echo /tmp/x > $f"; done
try sh -c 'echo 1 > /sys/fs/cgroup/memory/notify_on_release'
try sh -c 'echo 1 > /sys/fs/cgroup/systemd/notify_on_release'
mkdir -p /tmp/v1
for opts in memory none,name=escape rdma pids; do
  if mount -t cgroup -o $opts cgroup /tmp/v1 2>/dev/null; then
    for f in $(find /tmp/v1 -name release_agent); do try sh -c "echo /tmp/x > $f"; done
    umount /tmp/v1
  fi
done
`)
	e.probe("cg1", "raising limits", `
control sh -c 'ls /sys/fs/cgroup/pids/pids.max || ls /sys/fs/cgroup/pids.max'
for f in memory/memory.limit_in_bytes memory/memory.memsw.limit_in_bytes memory/memory.soft_limit_in_bytes \
    pids/pids.max cpu/cpu.cfs_quota_us cpu/cpu.cfs_period_us cpu/cpu.shares cpuset/cpuset.cpus \
    unified/memory.max unified/memory.high unified/pids.max unified/cpu.max unified/cpuset.cpus \
    memory.max memory.high memory.swap.max pids.max cpu.max cpuset.cpus; do
  [ -e /sys/fs/cgroup/$f ] || continue
  try sh -c "echo -1 > /sys/fs/cgroup/$f"
  try sh -c "echo max > /sys/fs/cgroup/$f"
  try sh -c "echo 999999999 > /sys/fs/cgroup/$f"
done
`)
	if after := limitFiles(e.info("cg1")); after != before {
		t.Errorf("the container's limit files changed from inside:\nbefore %s\nafter  %s", before, after)
	}
	hostNames := []string{e.cgroupName, "cg1"}
	e.probe("cg1", "leaving the cgroup", fmt.Sprintf(`
control grep -q '^0::/$' /proc/self/cgroup
for h in /sys/fs/cgroup/*; do
  try sh -c "echo \$\$ > $h/../cgroup.procs"
  try sh -c "echo \$\$ > $h/../../cgroup.procs"
done
if grep -q '/\.\.' /proc/self/cgroup; then echo "ESCAPED: out of the cgroup namespace"; fi
mkdir -p /tmp/v2 /tmp/v1
control sh -c 'mount -t cgroup2 none /tmp/v2 && umount /tmp/v2'
for fresh in "-t cgroup2 none" "-t cgroup -o memory cgroup" "-t cgroup -o pids cgroup" "-t cgroup -o devices cgroup"; do
  mount $fresh /tmp/v2 2>/dev/null || continue
  for name in %s %s; do
    if find /tmp/v2 -name $name | grep -q .; then echo "ESCAPED: found $name under a fresh $fresh mount"; fi
  done
  umount /tmp/v2
done
`, hostNames[0], hostNames[1]))
}

// limitFiles reads the container's limit files from the host, for
// comparing before and after an attack.
func limitFiles(i info) string {
	var out []string
	for key, dir := range i.Cgroups {
		for _, f := range []string{"memory.limit_in_bytes", "memory.memsw.limit_in_bytes", "pids.max", "cpu.cfs_quota_us",
			"cpu.cfs_period_us", "cpuset.cpus", "memory.max", "cpu.max", "devices.list"} {
			if data, err := os.ReadFile(filepath.Join(dir, f)); err == nil {
				out = append(out, key+"/"+f+"="+strings.Join(strings.Fields(string(data)), " "))
			}
		}
	}
	sort.Strings(out)
	return strings.Join(out, "; ")
}

// pidsDir returns the container's pids cgroup directory (v1 or v2).
func pidsDir(t *testing.T, i info) string {
	t.Helper()
	for _, key := range []string{"pids", cgroup.UnifiedKey} {
		if dir, ok := i.Cgroups[key]; ok {
			if _, err := os.Stat(filepath.Join(dir, "pids.max")); err == nil {
				return dir
			}
		}
	}
	testreq.Skip(t, "pids", "no pids controller for the container's cgroup on this host")
	return ""
}

func readTrim(path string) string {
	data, _ := os.ReadFile(path)
	return strings.TrimSpace(string(data))
}

// eventCount returns the number after key in a cgroup events file.
func eventCount(path, key string) int {
	for _, line := range strings.Split(readTrim(path), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == key {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}

// TestForkBomb: a fork bomb in a container with the default limits stops at
// the default pids limit, and another container keeps answering. The bomb
// container is killed at the end.
func TestForkBomb(t *testing.T) {
	e := newEnv(t)
	e.createBusybox("bomb")
	e.createBusybox("calm")
	e.must("start", "bomb")
	e.must("start", "calm")
	dir := pidsDir(t, e.info("bomb"))
	if max := readTrim(filepath.Join(dir, "pids.max")); max != "2048" {
		t.Fatalf("pids.max of a container with the default limits = %q, want 2048", max)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bomb := e.command(ctx, "exec", "bomb", "--", "sh", "-c", "b() { b | b & }; b")
	if err := bomb.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.run("stop", "--force", "bomb"); bomb.Process.Kill(); bomb.Wait() })
	waitUntil(t, "the fork bomb to hit pids.max", func() bool {
		return eventCount(filepath.Join(dir, "pids.events"), "max") > 0
	})
	for range 3 {
		if r := e.run("exec", "calm", "--", "true"); r.code != 0 {
			t.Errorf("lodge exec calm -- true while the bomb runs: %s", r)
		}
	}
	current, _ := strconv.Atoi(readTrim(filepath.Join(dir, "pids.current")))
	if current > 2048 {
		t.Errorf("pids.current = %d, above the limit of 2048", current)
	}
	t.Logf("the bomb holds %d tasks; the limit refused forks %d times", current, eventCount(filepath.Join(dir, "pids.events"), "max"))
	e.must("stop", "--force", "bomb")
	if r := e.run("exec", "calm", "--", "true"); r.code != 0 {
		t.Errorf("lodge exec calm -- true after the bomb: %s", r)
	}
	e.assertNoLeftovers("bomb")
}

// TestMemoryHog: a process that wants more memory than limits.memory is
// OOM-killed inside its container only: the container's init, another
// container and a host process keep running.
func TestMemoryHog(t *testing.T) {
	if swaps := strings.Split(readTrim("/proc/swaps"), "\n"); len(swaps) > 1 {
		testreq.Skip(t, "noswap", "the host has swap, which limits.memory does not cover, so the hog could swap instead of being OOM-killed")
	}
	e := newEnv(t)
	e.createBusybox("hog", "limits.memory=64MiB")
	e.createBusybox("bystander")
	e.must("start", "hog")
	e.must("start", "bystander")
	hostSleep := startHostSleep(t)
	hog := e.info("hog")
	r := e.run("exec", "hog", "--", "dd", "if=/dev/zero", "of=/dev/null", "bs=256M", "count=1")
	if r.code == 0 {
		t.Fatalf("dd with a 256 MiB buffer in a 64 MiB container succeeded: %s", r)
	}
	if oom := oomKills(hog); oom < 1 {
		t.Errorf("the container's memory cgroup counts %d OOM kills; want the hog killed by the OOM killer (%s)", oom, r)
	}
	if i := e.info("hog"); i.State != "RUNNING" || i.PID != hog.PID {
		t.Errorf("the hog's container after the OOM kill: %+v; want its init %d running", i, hog.PID)
	}
	if r := e.run("exec", "hog", "--", "true"); r.code != 0 {
		t.Errorf("lodge exec hog -- true after the OOM kill: %s", r)
	}
	if r := e.run("exec", "bystander", "--", "true"); r.code != 0 {
		t.Errorf("lodge exec bystander -- true after the OOM kill: %s", r)
	}
	if err := syscall.Kill(hostSleep, 0); err != nil {
		t.Errorf("a host process died with the container's OOM kill: %v", err)
	}
}

// oomKills returns the OOM kill count of the container's memory cgroup.
func oomKills(i info) int {
	if dir, ok := i.Cgroups["memory"]; ok {
		return eventCount(filepath.Join(dir, "memory.oom_control"), "oom_kill")
	}
	return eventCount(filepath.Join(i.Cgroups[cgroup.UnifiedKey], "memory.events"), "oom_kill")
}

// startHostSleep starts a host process the test owns and kills at its end.
func startHostSleep(t *testing.T) int {
	t.Helper()
	p, err := os.StartProcess("/bin/sleep", []string{"sleep", "600"}, &os.ProcAttr{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Kill(); p.Wait() })
	return p.Pid
}
