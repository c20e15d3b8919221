package tests

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// startSteps are the steps of a start, each made to fail for real in turn
// (LODGE_FAILPOINT, see internal/failpoint) to show that a failed start leaves
// no mounts, cgroups, links, processes or runtime files behind.
var startSteps = []string{
	"monitor", // the CLI spawning the monitor
	"cgroup",  // the monitor creating the container's cgroups
	"spawn",   // creating the namespaces
	"rootfs",  // idmapping the root filesystem
	"mount-rootfs", "mount-proc", "mount-sys", "mount-cgroup", "mount-run", "mount-dev",
	"pivot",
	"exec", // executing init
}

func TestStartFailureCleansUp(t *testing.T) {
	e := newEnv(t)
	e.createBusybox("f1")
	for _, step := range startSteps {
		t.Run(step, func(t *testing.T) {
			e.extraEnv = []string{"LODGE_FAILPOINT=" + step}
			r := e.run("start", "f1")
			e.extraEnv = nil
			if r.code == 0 || !strings.Contains(r.stderr, "failpoint "+step) {
				t.Fatalf("start with failpoint %s: %s", step, r)
			}
			if i := e.info("f1"); i.State != "STOPPED" {
				t.Fatalf("after failing at %s the container is %s", step, i.State)
			}
			e.assertNoLeftovers("f1")
		})
	}
	e.must("start", "f1") // and nothing left blocks a real start
	e.must("stop", "--force", "f1")
}

// TestStartRealFailures: failures the kernel or the guest cause, not injected.
func TestStartRealFailures(t *testing.T) {
	e := newEnv(t)
	e.createBusybox("noinit", "init.command=/sbin/no-such-init")
	e.expectFail(1, "/sbin/no-such-init", "start", "noinit")
	e.assertNoLeftovers("noinit")

	e.createBusybox("norootfs")
	rootfs := filepath.Join(e.root, "containers", "norootfs", "rootfs")
	os.Rename(rootfs, rootfs+".away")
	e.expectFail(1, "rootfs", "start", "norootfs")
	e.assertNoLeftovers("norootfs")
	os.Rename(rootfs+".away", rootfs)
	e.must("start", "norootfs")
	e.must("stop", "--force", "norootfs")
}

// TestTwentyAtOnce: 20 containers started at once from 20 processes all reach
// RUNNING, then stop cleanly, also at once.
func TestTwentyAtOnce(t *testing.T) {
	e := newEnv(t)
	const n = 20
	names := make([]string, n)
	for i := range names {
		names[i] = "par" + itoa(i)
		e.createBusybox(names[i])
	}
	parallel(t, names, func(name string) result { return e.run("start", name) })
	for _, i := range e.list() {
		if i.State != "RUNNING" || i.PID == 0 {
			t.Errorf("%s is %s (pid %d) after the parallel start", i.Name, i.State, i.PID)
		}
	}
	// Every monitor has gone idle (lodge-helper's watcher) and is still there.
	waitUntil(t, "all monitors idle", func() bool {
		for _, i := range e.list() {
			exe, _ := os.Readlink(filepath.Join("/proc", itoa(i.MonitorPID), "exe"))
			if !strings.HasSuffix(exe, "/lodge-helper") {
				return false
			}
		}
		return true
	})
	// A fixed wait, to show that something does NOT happen: a monitor that
	// died on its way to idle would show by now.
	time.Sleep(time.Second)
	for _, i := range e.list() {
		if i.Monitor != "running" {
			t.Errorf("%s: monitor %s after the parallel start", i.Name, i.Monitor)
		}
	}
	parallel(t, names, func(name string) result { return e.run("stop", "--timeout", "30s", name) })
	for _, i := range e.list() {
		if i.State != "STOPPED" {
			t.Errorf("%s is %s after the parallel stop", i.Name, i.State)
		}
	}
	e.assertNoLeftovers("")
}

func parallel(t *testing.T, names []string, run func(name string) result) {
	t.Helper()
	var wg sync.WaitGroup
	results := make([]result, len(names))
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = run(name)
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r.code != 0 {
			t.Errorf("%s: %s", names[i], r)
		}
	}
}
