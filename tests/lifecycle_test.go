package tests

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestBusyboxLifecycle is the first "done when": create, start, exec as
// root inside while unprivileged outside, stop, delete leaving nothing.
func TestBusyboxLifecycle(t *testing.T) {
	e := newEnv(t)
	e.createBusybox("c1")
	if i := e.info("c1"); i.State != "STOPPED" || i.PID != 0 {
		t.Fatalf("new container: state %s pid %d, want STOPPED 0", i.State, i.PID)
	}
	e.must("start", "c1")
	i := e.info("c1")
	if i.State != "RUNNING" || i.PID <= 0 || i.Monitor != "running" {
		t.Fatalf("after start: %+v", i)
	}
	if got := strings.TrimSpace(e.must("exec", "c1", "--", "id", "-u")); got != "0" {
		t.Fatalf("id -u inside = %q, want 0", got)
	}
	uid, err := hostUID(i.PID)
	if err != nil || uid == 0 {
		t.Fatalf("init runs as host uid %d (%v), want an unprivileged uid", uid, err)
	}
	if !strings.HasPrefix(i.IDMap, itoa(uid)+"-") {
		t.Errorf("init's host uid %d is not the start of the container's range %s", uid, i.IDMap)
	}
	uidMap := strings.Fields(e.must("exec", "c1", "--", "cat", "/proc/self/uid_map"))
	if len(uidMap) != 3 || uidMap[0] != "0" || uidMap[1] == "0" || uidMap[2] != "65536" {
		t.Fatalf("uid_map inside = %v, want 0 <host id> 65536", uidMap)
	}
	ps := e.must("exec", "c1", "--", "ps")
	if !regexpFind(`(?m)^\s*1\s+root\s+init`, ps) {
		t.Fatalf("ps inside does not show init as pid 1:\n%s", ps)
	}
	if got := strings.TrimSpace(e.must("exec", "c1", "--", "hostname")); got != "c1" {
		t.Errorf("hostname inside = %q, want c1", got)
	}
	// Once booted, the monitor waits as lodge-helper's small watcher (idle.go).
	waitUntil(t, "the monitor to go idle", func() bool {
		exe, _ := os.Readlink(filepath.Join("/proc", itoa(i.MonitorPID), "exe"))
		return strings.HasSuffix(exe, "/lodge-helper")
	})
	began := time.Now()
	e.must("stop", "c1")
	t.Logf("graceful stop of busybox took %v", time.Since(began))
	if i := e.info("c1"); i.State != "STOPPED" || i.PID != 0 {
		t.Fatalf("after stop: state %s pid %d", i.State, i.PID)
	}
	e.assertNoLeftovers("c1")
	e.must("delete", "c1")
	if _, err := os.Stat(filepath.Join(e.root, "containers", "c1")); !os.IsNotExist(err) {
		t.Fatalf("container directory still there after delete: %v", err)
	}
	if idmap, _ := os.ReadFile(filepath.Join(e.root, "idmap.json")); strings.Contains(string(idmap), `"c1"`) {
		t.Fatalf("id range of c1 not released:\n%s", idmap)
	}
	e.assertNoLeftovers("c1")
}

// TestMountTreeProtections checks what the container's root can and cannot
// reach in /proc, /sys and /dev.
func TestMountTreeProtections(t *testing.T) {
	e := newEnv(t)
	e.createBusybox("p1")
	e.must("start", "p1")
	checks := []struct{ name, script string }{
		{"/proc/sys is read-only", "! echo 1 > /proc/sys/kernel/panic 2>/dev/null"},
		{"/proc/sysrq-trigger is read-only", "! echo h > /proc/sysrq-trigger 2>/dev/null"},
		{"/proc/sys/net is writable", "echo 1 > /proc/sys/net/ipv4/ip_forward"},
		{"/sys is read-only", "grep -q ' /sys sysfs ro,' /proc/mounts"},
		{"/proc/keys is masked", "[ ! -s /proc/keys ]"},
		{"/dev/console is a pty", "[ -c /dev/console ] && grep -q ' /dev/console devpts ' /proc/mounts"},
		{"/dev/null works", "echo x > /dev/null && [ -z \"$(head -c1 /dev/null)\" ]"},
		{"/dev/ptmx points to a private devpts", "[ \"$(readlink /dev/ptmx)\" = pts/ptmx ] && grep -q ' /dev/pts devpts .*ptmxmode=666' /proc/mounts"},
		{"cgroup namespace roots the container", "grep -q '^0::/$' /proc/self/cgroup"},
		{"the cgroup subtree is delegated", "mkdir /sys/fs/cgroup/unified/probe && rmdir /sys/fs/cgroup/unified/probe"},
		{"limits cannot be raised from inside", "! echo max > /sys/fs/cgroup/pids/pids.max 2>/dev/null"},
		{"systemd's container file", "[ \"$(cat /run/systemd/container)\" = lodge ]"},
		{"loopback is up", "ip link show lo | grep -q UP"},
		{"no other network interfaces", "[ \"$(ls /sys/class/net)\" = lo ]"},
		{"own time namespace", "[ \"$(readlink /proc/1/ns/time)\" = \"$(readlink /proc/self/ns/time)\" ]"},
	}
	for _, c := range checks {
		if r := e.run("exec", "p1", "--", "sh", "-c", c.script); r.code != 0 {
			t.Errorf("%s: check %q failed: %s", c.name, c.script, r)
		}
	}
	hostTime, _ := os.Readlink("/proc/self/ns/time")
	if inside := strings.TrimSpace(e.must("exec", "p1", "--", "readlink", "/proc/1/ns/time")); inside == hostTime {
		t.Errorf("init shares the host's time namespace %s", hostTime)
	}
}

func TestRebootAndPoweroffFromInside(t *testing.T) {
	e := newEnv(t)
	e.createBusybox("r1")
	e.must("start", "r1")
	before := e.info("r1").PID
	e.run("exec", "r1", "--", "reboot")
	i := waitFor(t, e, "r1", func(i info) bool { return i.State == "RUNNING" && i.PID != before && i.PID != 0 })
	t.Logf("rebooted: init pid %d -> %d", before, i.PID)
	if got := strings.TrimSpace(e.must("exec", "r1", "--", "hostname")); got != "r1" {
		t.Errorf("after reboot hostname = %q", got)
	}
	e.run("exec", "r1", "--", "poweroff")
	waitFor(t, e, "r1", func(i info) bool { return i.State == "STOPPED" })
	waitUntil(t, "runtime state removed", func() bool {
		_, err := os.Stat(filepath.Join(e.root, "run", "r1.json"))
		return os.IsNotExist(err)
	})
	// The monitor removes the state as its last step and then exits; on a
	// loaded machine it can still be exiting a few ms later.
	waitUntil(t, "monitor exited", func() bool { return unix.Kill(i.MonitorPID, 0) != nil })
	e.assertNoLeftovers("r1")
}

// TestMonitorKilled: the container outlives its monitor; list tells the truth
// and stop still works.
func TestMonitorKilled(t *testing.T) {
	e := newEnv(t)
	e.createBusybox("m1", "init.stop_timeout=5s")
	e.must("start", "m1")
	i := e.info("m1")
	monitor, err := os.FindProcess(i.MonitorPID)
	if err != nil {
		t.Fatal(err)
	}
	monitor.Kill()
	waitUntil(t, "monitor gone", func() bool { return e.info("m1").Monitor == "gone" })
	if after := e.info("m1"); after.State != "RUNNING" || after.PID != i.PID {
		t.Fatalf("after the monitor died: %+v, want RUNNING with pid %d", after, i.PID)
	}
	if got := strings.TrimSpace(e.must("exec", "m1", "--", "echo", "alive")); got != "alive" {
		t.Fatalf("exec without monitor printed %q", got)
	}
	e.expectFail(1, "monitor", "console", "m1")
	e.must("stop", "m1")
	if after := e.info("m1"); after.State != "STOPPED" {
		t.Fatalf("after stop: %+v", after)
	}
	e.assertNoLeftovers("m1")
	e.must("start", "m1") // nothing stale blocks a new start
	e.must("stop", "--force", "m1")
}

func TestListFormats(t *testing.T) {
	e := newEnv(t)
	e.createBusybox("f1", "limits.memory=256MiB", "limits.cpuset=0", "limits.pids=100", "limits.cpu=0.5")
	e.createBusybox("f2")
	e.must("start", "f1")
	infos := e.list()
	if len(infos) != 2 || infos[0].Name != "f1" || infos[0].State != "RUNNING" || infos[0].PID == 0 ||
		infos[1].Name != "f2" || infos[1].State != "STOPPED" || infos[1].PID != 0 {
		t.Fatalf("list --format json = %+v", infos)
	}
	var raw []map[string]any
	json.Unmarshal([]byte(e.must("list", "--format", "json")), &raw)
	for _, key := range []string{"name", "state", "pid"} {
		if _, ok := raw[0][key]; !ok {
			t.Errorf("list JSON lacks %q: %v", key, raw[0])
		}
	}
	yaml := e.must("ls", "--format", "yaml")
	if !strings.Contains(yaml, "name: f1") || !strings.Contains(yaml, "state: RUNNING") {
		t.Errorf("list --format yaml:\n%s", yaml)
	}
	table := e.must("list")
	if !regexpFind(`(?m)^f1\s+RUNNING\s+\d+\s+busybox\s+256MiB\s+0.5\s+0\s`, table) {
		t.Errorf("list table:\n%s", table)
	}
	var one map[string]any
	json.Unmarshal([]byte(e.must("info", "f1", "--format", "json")), &one)
	if one["name"] != "f1" || one["state"] != "RUNNING" || one["pid"].(float64) == 0 {
		t.Errorf("info --format json = %v", one)
	}
	// The limits reached the kernel.
	cg := e.info("f1").Cgroups
	expectFile(t, filepath.Join(cg["memory"], "memory.limit_in_bytes"), "268435456")
	expectFile(t, filepath.Join(cg["cpuset"], "cpuset.cpus"), "0")
	expectFile(t, filepath.Join(cg["pids"], "pids.max"), "100")
	expectFile(t, filepath.Join(cg["cpu"], "cpu.cfs_quota_us"), "50000")
	e.must("stop", "--force", "f1")
}

// TestWithoutHelper: with lodge-helper missing, containers still start (the
// monitor moves the first process into its cgroups itself, more slowly) and
// exec says what is missing.
func TestWithoutHelper(t *testing.T) {
	e := newEnv(t)
	e.bin = lodgeWithoutHelper(t)
	e.createBusybox("w1")
	e.must("start", "w1")
	i := e.info("w1")
	if data, err := os.ReadFile(filepath.Join("/proc", itoa(i.PID), "cgroup")); err != nil ||
		strings.Count(string(data), "/"+e.cgroupName+"/w1") != strings.Count(string(data), "\n") {
		t.Errorf("init is not in the container's cgroups on every hierarchy:\n%s", data)
	}
	e.expectFail(125, "lodge-helper is missing", "exec", "w1", "--", "true")
	e.must("stop", "--force", "w1")
	e.assertNoLeftovers("w1")
}
