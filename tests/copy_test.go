package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"lodge/internal/testreq"
)

// storageInfo is what lodge info --format json says of a container's storage.
type storageInfo struct {
	Storage struct {
		Backend   string `json:"backend"`
		DiskBytes int64  `json:"disk_bytes"`
		Snapshots []struct {
			Name  string `json:"name"`
			Bytes int64  `json:"bytes"`
		} `json:"snapshots"`
	} `json:"storage"`
	Limits struct {
		Disk string `json:"disk"`
	} `json:"limits"`
}

func (e *env) storageInfo(name string) storageInfo {
	e.t.Helper()
	var si storageInfo
	if err := json.Unmarshal([]byte(e.must("info", name, "--format", "json")), &si); err != nil {
		e.t.Fatal(err)
	}
	return si
}

// listed returns the list entry of name, if it is listed.
func (e *env) listed(name string) (info, bool) {
	e.t.Helper()
	for _, i := range e.list() {
		if i.Name == name {
			return i, true
		}
	}
	return info{}, false
}

// checkIdentity boots container name and checks it is itself: its
// hostname, and a machine-id, which it returns.
func checkIdentity(t *testing.T, e *env, name string) string {
	t.Helper()
	e.must("start", name)
	if got := strings.TrimSpace(e.must("exec", name, "--", "hostname")); got != name {
		t.Errorf("hostname inside %s = %q", name, got)
	}
	if got := e.must("exec", name, "--", "cat", "/etc/hostname"); got != name+"\n" {
		t.Errorf("/etc/hostname inside %s = %q", name, got)
	}
	if hosts := e.must("exec", name, "--", "cat", "/etc/hosts"); !strings.Contains(hosts, "\t"+name+"\n") {
		t.Errorf("/etc/hosts inside %s does not name it:\n%s", name, hosts)
	}
	id := strings.TrimSpace(e.must("exec", name, "--", "cat", "/etc/machine-id"))
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(id) {
		t.Errorf("machine-id of %s = %q, want 32 hex digits", name, id)
	}
	return id
}

// TestCopyStopped: a full copy of a stopped container is a container of its
// own (name, hostname, machine-id, id range) that boots, with the source's
// files and configuration; the source is untouched.
func TestCopyStopped(t *testing.T) {
	e := newEnv(t)
	e.createBusybox("cps", "limits.pids=321")
	e.must("start", "cps")
	e.must("exec", "cps", "--", "sh", "-c", "echo from-source > /data")
	e.must("stop", "cps")
	out := e.must("copy", "cps", "cpd1")
	if strings.Contains(out, "frozen") {
		t.Errorf("copy of a stopped container says it froze it: %q", out)
	}
	e.must("clone", "cps", "cpd2") // the alias
	src, _ := e.listed("cps")
	ranges := map[string]string{src.IDMap: "cps"}
	ids := map[string]string{}
	for _, name := range []string{"cpd1", "cpd2"} {
		i, ok := e.listed(name)
		if !ok || i.State != "STOPPED" || i.Error != "" {
			t.Fatalf("copy %s listed as %+v (listed: %v)", name, i, ok)
		}
		if other, dup := ranges[i.IDMap]; dup || i.IDMap == "" {
			t.Errorf("copy %s has id range %q, that of %s", name, i.IDMap, other)
		}
		ranges[i.IDMap] = name
		if show := e.must("config", "show", name); !strings.Contains(show, "pids = 321") {
			t.Errorf("copy %s lacks the source's limits.pids = 321:\n%s", name, show)
		}
		id := checkIdentity(t, e, name)
		if other, dup := ids[id]; dup {
			t.Errorf("copies %s and %s share machine-id %s", name, other, id)
		}
		ids[id] = name
		if got := e.must("exec", name, "--", "cat", "/data"); got != "from-source\n" {
			t.Errorf("/data in copy %s = %q", name, got)
		}
		e.must("stop", name)
	}
	e.must("start", "cps")
	if got := strings.TrimSpace(e.must("exec", "cps", "--", "hostname")); got != "cps" {
		t.Errorf("source's hostname became %q", got)
	}
	e.expectFail(4, "already exists", "copy", "cps", "cpd1")
	e.expectFail(3, "not found", "copy", "nosuch", "cpd3")
	e.expectFail(2, "invalid container name", "copy", "cps", "bad_name")
	if left, _ := filepath.Glob(filepath.Join(e.root, "tmp", "*")); len(left) > 0 {
		t.Errorf("leftovers in ROOT/tmp: %v", left)
	}
}

// TestCopyRunning: a copy of a running container freezes it for the cut
// only (and says for how long), leaves it running and thawed, and boots.
func TestCopyRunning(t *testing.T) {
	e := newEnv(t)
	e.createBusybox("cpr")
	e.must("start", "cpr")
	e.must("exec", "cpr", "--", "sh", "-c", "echo live > /data")
	out := e.must("copy", "cpr", "cpr2")
	if !regexp.MustCompile(`(?m)^frozen for \d+ ms$`).MatchString(out) {
		t.Errorf("copy of a running container: stdout %q lacks 'frozen for N ms'", out)
	}
	var res struct {
		Frozen   bool   `json:"frozen"`
		FrozenMS *int64 `json:"frozen_ms"`
	}
	if err := json.Unmarshal([]byte(e.must("copy", "cpr", "cpr3", "--format", "json")), &res); err != nil || !res.Frozen || res.FrozenMS == nil {
		t.Errorf("copy --format json: %+v, %v; want frozen and frozen_ms", res, err)
	}
	if i := e.info("cpr"); i.State != "RUNNING" {
		t.Errorf("source after the copies: state %s, want RUNNING (thawed)", i.State)
	}
	e.must("exec", "cpr", "--", "true")
	for _, name := range []string{"cpr2", "cpr3"} {
		checkIdentity(t, e, name)
		if got := e.must("exec", name, "--", "cat", "/data"); got != "live\n" {
			t.Errorf("/data in %s = %q", name, got)
		}
	}
}

// TestCopyOnWrite: --snapshot makes a clone where the backend and the
// filesystem can share data, and otherwise is refused with the way out and
// nothing left behind.
func TestCopyOnWrite(t *testing.T) {
	t.Run("overlay", func(t *testing.T) {
		e := newEnv(t)
		e.useStorage("overlay")
		e.createBusybox("cow")
		e.must("start", "cow")
		e.must("exec", "cow", "--", "sh", "-c", "echo source > /data")
		e.must("stop", "cow")
		e.must("copy", "cow", "cow2", "--snapshot")
		if b := e.storageInfo("cow2").Storage.Backend; b != "overlay" {
			t.Fatalf("the clone's backend is %q, want overlay", b)
		}
		checkIdentity(t, e, "cow2")
		// The clone and its source share the frozen layer but never see
		// each other's writes.
		e.must("start", "cow")
		e.must("exec", "cow", "--", "sh", "-c", "echo changed > /data")
		if got := e.must("exec", "cow2", "--", "cat", "/data"); got != "source\n" {
			t.Errorf("/data in the clone = %q after the source changed it, want source", got)
		}
		e.must("exec", "cow2", "--", "rm", "/data")
		if got := e.must("exec", "cow", "--", "cat", "/data"); got != "changed\n" {
			t.Errorf("/data in the source = %q after the clone removed its own, want changed", got)
		}
		// Deleting the source keeps the layers the clone stands on.
		e.must("exec", "cow2", "--", "sh", "-c", "echo clone > /data2")
		e.must("delete", "--force", "cow")
		if r := e.run("restart", "cow2"); r.code != 0 {
			log, _ := os.ReadFile(filepath.Join(e.root, "containers", "cow2", "log", "monitor.log"))
			t.Fatalf("restart of the clone after its source was deleted: %s\nmonitor.log:\n%s", r, log)
		}
		if got := e.must("exec", "cow2", "--", "cat", "/data2", "/bin/busybox"); !strings.HasPrefix(got, "clone\n") {
			t.Errorf("the clone after its source was deleted: /data2 = %.20q", got)
		}
		if _, err := os.Stat(filepath.Join(e.root, "containers", "cow")); err == nil {
			t.Error("the deleted source's directory is still there")
		}
	})
	t.Run("dir refuses", func(t *testing.T) {
		e := newEnv(t)
		e.useStorage("dir")
		e.createBusybox("cow")
		r := e.run("copy", "cow", "cow2", "--snapshot")
		if r.code == 0 {
			var st unix.Statfs_t
			unix.Statfs(e.root, &st)
			testreq.Skip(t, "reflink", fmt.Sprintf("the test root's filesystem (magic %#x) shares blocks, so the dir backend clones", st.Type))
		}
		if r.code != 1 || !strings.Contains(r.stderr, "copy-on-write") || !strings.Contains(r.stderr, "full copy") {
			t.Fatalf("refused clone: want exit 1 naming copy-on-write and the full copy, got %s", r)
		}
		if _, ok := e.listed("cow2"); ok {
			t.Error("a refused clone is listed")
		}
		if left, _ := filepath.Glob(filepath.Join(e.root, "tmp", "*")); len(left) > 0 {
			t.Errorf("leftovers in ROOT/tmp: %v", left)
		}
	})
}

// TestCopySnapshot: NAME/SNAP copies the snapshot, not the container as
// it is now.
func TestCopySnapshot(t *testing.T) {
	e := newEnv(t)
	e.createBusybox("cs")
	e.must("start", "cs")
	e.must("exec", "cs", "--", "sh", "-c", "echo 1 > /data")
	e.must("snapshot", "create", "cs", "before")
	e.must("exec", "cs", "--", "sh", "-c", "echo 2 > /data")
	e.must("copy", "cs/before", "cs-old")
	checkIdentity(t, e, "cs-old")
	if got := e.must("exec", "cs-old", "--", "cat", "/data"); got != "1\n" {
		t.Errorf("/data in the copy of the snapshot = %q, want 1", got)
	}
	e.expectFail(3, `no snapshot "nope"`, "copy", "cs/nope", "cs-x")
}

// TestDiskLimitRefused: where the backend cannot enforce limits.disk,
// config set and create -c refuse it with the reason and change nothing.
func TestDiskLimitRefused(t *testing.T) {
	e := newEnv(t)
	e.useStorage("dir") // overlay (this host's default) and btrfs enforce it
	e.createBusybox("dl")
	if b := e.storageInfo("dl").Storage.Backend; b != "dir" {
		t.Skipf("SKIPPED: the refusal is the dir backend's; this root uses %s", b)
	}
	before := e.must("config", "show", "dl")
	e.expectFail(2, "cannot be enforced by the dir backend", "config", "set", "dl", "limits.disk=200MiB")
	if after := e.must("config", "show", "dl"); after != before {
		t.Errorf("refused config set changed config.toml:\n%s\nto\n%s", before, after)
	}
	e.must("config", "set", "dl", "limits.disk=0") // no limit: nothing to enforce
	e.must("config", "set", "dl", "limits.disk=")
	// Refused before anything is built, naming the root, not a staging path.
	if r := e.run("create", "dl2", "--template", "busybox", "-c", "limits.disk=200MiB"); r.code != 2 || !strings.Contains(r.stderr, "cannot be enforced by the dir backend") ||
		strings.Contains(r.stderr, ".create") || strings.Contains(r.stdout+r.stderr, "making the root filesystem") {
		t.Errorf("create -c limits.disk=200MiB: want exit 2 and the reason before any work, got %s", r)
	}
	if _, ok := e.listed("dl2"); ok {
		t.Error("a create refused for limits.disk is listed")
	}
	e.expectFail(2, "too small", "config", "set", "dl", "limits.disk=200")
	// A limit written into config.toml by hand is not ignored either: start
	// refuses it.
	path := filepath.Join(e.root, "containers", "dl", "config.toml")
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(text), "[limits]\n", "[limits]\ndisk = \"200MiB\"\n", 1)
	if edited == string(text) {
		t.Fatalf("config.toml has no [limits] table:\n%s", text)
	}
	if err := os.WriteFile(path, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	e.expectFail(2, "cannot be enforced", "start", "dl")
}

// TestDeleteRemovesSnapshots: deleting a container deletes its snapshots.
func TestDeleteRemovesSnapshots(t *testing.T) {
	e := newEnv(t)
	e.createBusybox("ds")
	e.must("snapshot", "create", "ds")
	e.must("snapshot", "create", "ds")
	if n := len(e.storageInfo("ds").Storage.Snapshots); n != 2 {
		t.Fatalf("info lists %d snapshots, want 2", n)
	}
	e.must("delete", "ds")
	if _, err := os.Stat(filepath.Join(e.root, "containers", "ds")); !os.IsNotExist(err) {
		t.Errorf("container directory after delete: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(e.root, "tmp", "*")); len(left) > 0 {
		t.Errorf("leftovers in ROOT/tmp after delete: %v", left)
	}
	e.createBusybox("ds")
	if out := e.must("snapshot", "list", "ds", "--format", "json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("a new container of the same name has snapshots: %s", out)
	}
}

// counterInit is an init that counts, writing each value atomically.
const counterInit = `init.command=/bin/sh -c 'i=0; while :; do i=$((i+1)); echo $i > /counter.new; mv /counter.new /counter; sleep 0.01; done'`

func readCounter(t *testing.T, e *env, name string) int {
	t.Helper()
	out := strings.TrimSpace(e.must("exec", name, "--", "cat", "/counter"))
	n, err := strconv.Atoi(out)
	if err != nil {
		t.Fatalf("/counter in %s = %q", name, out)
	}
	return n
}

// restoredCounter restores snapshot snap of a stopped container and boots
// it with an init that does not count, returning the counter it finds.
func restoredCounter(t *testing.T, e *env, name, snap string) int {
	t.Helper()
	e.must("snapshot", "restore", name, snap)
	e.must("config", "set", name, "init.command=/sbin/init")
	e.must("start", name)
	n := readCounter(t, e, name)
	e.must("stop", "--force", name)
	return n
}

// TestSnapshotsOfRunning: ten snapshots of a running container while its
// init increments a counter; restoring the 5th brings back its value, and
// snapshots 6-10 are still listed and restorable, in any order.
func TestSnapshotsOfRunning(t *testing.T) {
	e := newEnv(t)
	e.createBusybox("sr", counterInit)
	e.must("start", "sr")
	waitUntil(t, "the counter to start", func() bool {
		return e.run("exec", "sr", "--", "test", "-s", "/counter").code == 0
	})
	type bracket struct{ before, after int }
	var brackets []bracket
	for k := 0; k < 10; k++ {
		before := readCounter(t, e, "sr")
		out := e.must("snapshot", "create", "sr")
		if !regexp.MustCompile(`(?m)^frozen for \d+ ms$`).MatchString(out) || !strings.Contains(out, "snap"+itoa(k)) {
			t.Errorf("snapshot %d: stdout %q lacks 'frozen for N ms' or the name snap%d", k, out, k)
		}
		after := readCounter(t, e, "sr")
		brackets = append(brackets, bracket{before, after})
		waitUntil(t, "the counter to move on", func() bool { return readCounter(t, e, "sr") > after })
	}
	if i := e.info("sr"); i.State != "RUNNING" {
		t.Errorf("after ten snapshots: state %s, want RUNNING (thawed)", i.State)
	}
	e.expectFail(4, "lodge stop sr", "snapshot", "restore", "sr", "snap4")
	e.must("stop", "--force", "sr")
	v5 := restoredCounter(t, e, "sr", "snap4")
	if b := brackets[4]; v5 < b.before || v5 > b.after {
		t.Errorf("restored 5th snapshot: counter %d, want between %d and %d (read around the snapshot)", v5, b.before, b.after)
	}
	var snaps []struct{ Name string }
	if err := json.Unmarshal([]byte(e.must("snapshot", "list", "sr", "--format", "json")), &snaps); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range snaps {
		names = append(names, s.Name)
	}
	if strings.Join(names, " ") != "snap0 snap1 snap2 snap3 snap4 snap5 snap6 snap7 snap8 snap9" {
		t.Fatalf("after restoring snap4: snapshots %v, want snap0..snap9 in order", names)
	}
	prev := v5
	for k := 5; k < 10; k++ {
		v := restoredCounter(t, e, "sr", "snap"+itoa(k))
		if b := brackets[k]; v < b.before || v > b.after || v <= prev {
			t.Errorf("snapshot %d: counter %d, want between %d and %d and above %d", k+1, v, b.before, b.after, prev)
		}
		prev = v
	}
	if again := restoredCounter(t, e, "sr", "snap4"); again != v5 {
		t.Errorf("snap4 restored again after snap9: counter %d, want %d", again, v5)
	}
	si := e.storageInfo("sr")
	if len(si.Storage.Snapshots) != 10 || si.Storage.Snapshots[0].Bytes <= 0 || si.Storage.DiskBytes <= 0 {
		t.Errorf("info's storage: %+v, want 10 snapshots with sizes and a disk usage", si.Storage)
	}
	e.must("snapshot", "delete", "sr", "snap0")
	e.expectFail(3, `no snapshot "snap0"`, "snapshot", "restore", "sr", "snap0")
	e.expectFail(2, "invalid snapshot name", "snapshot", "create", "sr", ".hidden")
	e.must("snapshot", "create", "sr", "named")
	e.expectFail(4, "already exists", "snapshot", "create", "sr", "named")
	if out := e.must("snapshot", "create", "sr"); !strings.Contains(out, "snap10") {
		t.Errorf("next default name after snap9: %q, want snap10", out)
	}
}
