package tests

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"lodge/internal/testreq"
)

// busyLoop counts as fast as it can (no sleep), writing each value
// atomically to /tmp/c; it runs in the background of a lodge exec, so the
// container's init is busybox's, which takes its stop signal.
const busyLoop = `sh -c 'i=0; while :; do i=$((i+1)); echo $i > /tmp/c.new; mv /tmp/c.new /tmp/c; done' >/dev/null 2>&1 &`

// hostCounter reads a container's counter from the host, through its init's
// root: it works while the container is frozen (exec does not).
func hostCounter(t *testing.T, e *env, name string) int {
	t.Helper()
	pid := e.info(name).PID
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/root/tmp/c", pid))
	if err != nil {
		t.Fatalf("counter of %s: %v", name, err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatalf("counter of %s = %q", name, data)
	}
	return n
}

func startBusy(t *testing.T, e *env, name string) {
	t.Helper()
	e.createBusybox(name)
	e.must("start", name)
	e.must("exec", name, "--", "sh", "-c", busyLoop)
	waitUntil(t, "the counter to start", func() bool {
		_, err := os.Stat(fmt.Sprintf("/proc/%d/root/tmp/c", e.info(name).PID))
		return err == nil
	})
}

// TestFreeze: a container counting in a busy loop is frozen (list and info
// say FROZEN, the counter stands still, exec and start refuse with the way
// out, a second freeze says so), unfrozen (the counter moves on, RUNNING),
// and stop and delete --force of a frozen container work.
func TestFreeze(t *testing.T) {
	e := newEnv(t)
	startBusy(t, e, "fz")
	e.must("freeze", "fz")
	if i := e.info("fz"); i.State != "FROZEN" {
		t.Errorf("info after freeze: state %s, want FROZEN", i.State)
	}
	for _, i := range e.list() {
		if i.Name == "fz" && i.State != "FROZEN" {
			t.Errorf("list after freeze: state %s, want FROZEN", i.State)
		}
	}
	first := hostCounter(t, e, "fz")
	time.Sleep(200 * time.Millisecond) // a pause for a running loop to count in; not a timing assert
	if second := hostCounter(t, e, "fz"); second != first {
		t.Errorf("frozen container counted on: %d then %d", first, second)
	}
	if r := e.run("freeze", "fz"); r.code != 0 || !strings.Contains(r.stderr, "frozen already") {
		t.Errorf("second freeze: %s", r)
	}
	e.expectFail(125, "lodge unfreeze fz", "exec", "fz", "--", "true")
	e.expectFail(4, "frozen", "start", "fz")

	e.must("unfreeze", "fz")
	if i := e.info("fz"); i.State != "RUNNING" {
		t.Errorf("info after unfreeze: state %s, want RUNNING", i.State)
	}
	waitUntil(t, "the counter to move on after unfreeze", func() bool { return hostCounter(t, e, "fz") > first })
	if r := e.run("resume", "fz"); r.code != 0 || !strings.Contains(r.stderr, "not frozen") {
		t.Errorf("unfreeze of a running container: %s", r)
	}
	e.must("exec", "fz", "--", "true")

	// The aliases, and stop of a frozen container (it thaws first: the
	// init takes its stop signal, so this is no kill after the timeout).
	e.must("pause", "fz")
	if i := e.info("fz"); i.State != "FROZEN" {
		t.Fatalf("after pause: state %s, want FROZEN", i.State)
	}
	if r := e.run("stop", "--timeout", "60", "fz"); r.code != 0 || strings.Contains(r.stderr, "killed") {
		t.Errorf("stop of a frozen container: %s", r)
	}
	if i := e.info("fz"); i.State != "STOPPED" {
		t.Errorf("after stop: state %s, want STOPPED", i.State)
	}
	e.expectFail(4, "lodge start fz", "freeze", "fz")

	e.must("start", "fz")
	e.must("freeze", "fz")
	e.must("delete", "--force", "fz")
	e.assertNoLeftovers("fz")
}

// TestFreezeKeepsUserFreeze: a copy and a snapshot of a container the user
// froze leave it frozen (only a copy's own freeze is thawed at its end).
func TestFreezeKeepsUserFreeze(t *testing.T) {
	e := newEnv(t)
	startBusy(t, e, "fu")
	e.must("freeze", "fu")
	before := hostCounter(t, e, "fu")
	e.must("snapshot", "create", "fu")
	e.must("copy", "fu", "fu2")
	if i := e.info("fu"); i.State != "FROZEN" {
		t.Errorf("after snapshot and copy of a frozen container: state %s, want FROZEN", i.State)
	}
	if after := hostCounter(t, e, "fu"); after != before {
		t.Errorf("frozen container counted on during snapshot and copy: %d then %d", before, after)
	}
	e.must("unfreeze", "fu")
	waitUntil(t, "the counter to move on", func() bool { return hostCounter(t, e, "fu") > before })
}

// TestFreezeTimeout: a task of the container that cannot freeze (blocked in
// a killable wait on a FUSE connection whose server, this test, never
// answers) makes freeze give up after --timeout: the container is thawed
// again and the error names the task and where it waits in the kernel.
func TestFreezeTimeout(t *testing.T) {
	e := newEnv(t)
	if _, err := os.Stat("/dev/fuse"); err != nil {
		testreq.Skip(t, "fuse", "no /dev/fuse: cannot make a task that does not freeze")
	}
	startBusy(t, e, "ft")
	stuck := stuckTask(t, e.info("ft").PID)

	r := e.expectFail(1, "did not freeze within 2s", "freeze", "--timeout", "2s", "ft")
	t.Logf("lodge freeze said: %s", r.stderr)
	for _, want := range []string{"stat (pid " + strconv.Itoa(stuck), "state D", "fuse", "thawed again"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("freeze error lacks %q: %s", want, r.stderr)
		}
	}
	if strings.Contains(r.stderr, "(pid "+strconv.Itoa(e.info("ft").PID)) {
		t.Errorf("freeze error names init, which froze: %s", r.stderr)
	}
	if i := e.info("ft"); i.State != "RUNNING" {
		t.Errorf("after a freeze that timed out: state %s, want RUNNING (thawed)", i.State)
	}
	n := hostCounter(t, e, "ft")
	waitUntil(t, "the counter to move on after the failed freeze", func() bool { return hostCounter(t, e, "ft") > n })
}

// stuckTask starts a process that blocks in the kernel in a wait that does
// not freeze, in the cgroup2 group of process initPID: a stat below a FUSE
// mount whose server (this test) never answers the kernel's INIT request,
// so the stat waits killable for the connection to come up. Cleanup aborts
// the connection, which ends the wait.
func stuckTask(t *testing.T, initPID int) int {
	t.Helper()
	group := unifiedGroup(t, initPID)
	dev, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		testreq.Skipf(t, "fuse", "open /dev/fuse: %v", err)
	}
	mnt := t.TempDir()
	opts := fmt.Sprintf("fd=%d,rootmode=40000,user_id=0,group_id=0", dev.Fd())
	if err := unix.Mount("lodge-freeze-test", mnt, "fuse", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		dev.Close()
		t.Fatalf("mount fuse: %v", err)
	}
	cmd := exec.Command("sh", "-c", "read x; exec stat "+mnt+"/x")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		dev.Close() // aborts the connection: the stat fails and exits
		unix.Unmount(mnt, unix.MNT_DETACH)
		cmd.Process.Kill()
		cmd.Wait()
	})
	if err := os.WriteFile(filepath.Join(group, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0); err != nil {
		t.Fatalf("move the stuck task into %s: %v", group, err)
	}
	in.Write([]byte("\n"))
	pid := cmd.Process.Pid
	waitUntil(t, "the stat to block on the FUSE connection", func() bool {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return false
		}
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		return strings.Contains(s, "(stat)") && i >= 0 && s[i+2] == 'D'
	})
	return pid
}

// unifiedGroup is the cgroup2 directory of process pid.
func unifiedGroup(t *testing.T, pid int) string {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	var path string
	for _, line := range strings.Split(string(data), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			path = p
		}
	}
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 2 && fields[2] == "cgroup2" && path != "" {
			return filepath.Join(fields[1], path)
		}
	}
	testreq.Skip(t, "cgroup2", "no cgroup2 hierarchy: the freezer is v1's, where this stuck task test does not place its task")
	return ""
}

// TestFreezeSurvivesKilledCopy: copies of a container the user froze,
// killed at random moments, leave it frozen: a copy finds the user's freeze
// and leaves no frozen-by marker of its own, so the healing that list and
// info do for a killed copy's freeze never thaws the user's.
func TestFreezeSurvivesKilledCopy(t *testing.T) {
	e := newEnv(t)
	startBusy(t, e, "fk")
	e.must("freeze", "fk")
	before := hostCounter(t, e, "fk")
	span := timed(e, "copy", "fk", "fk-probe")
	e.must("delete", "fk-probe")
	rng := newRand(t)
	for round := range 5 {
		delay := time.Duration(rng.Int64N(int64(span)))
		killAfter(t, e, delay, "copy", "fk", "fk2")
		if _, err := os.Stat(filepath.Join(e.root, "containers", "fk", "frozen-by")); err == nil {
			t.Errorf("round %d: a copy of a user-frozen container left a frozen-by marker", round)
		}
		if src, ok := e.listed("fk"); !ok || src.State != "FROZEN" {
			t.Fatalf("round %d (copy killed after %v): listed as %+v, want FROZEN", round, delay, src)
		}
		if i := e.info("fk"); i.State != "FROZEN" {
			t.Fatalf("round %d: info says %s, want FROZEN", round, i.State)
		}
		e.run("delete", "fk2")
	}
	if after := hostCounter(t, e, "fk"); after != before {
		t.Errorf("the user-frozen container counted on: %d then %d", before, after)
	}
	e.must("unfreeze", "fk")
	waitUntil(t, "the counter to move on", func() bool { return hostCounter(t, e, "fk") > before })
}
