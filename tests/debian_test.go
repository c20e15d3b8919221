package tests

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDebianSystemd: a stock Debian with systemd boots unprivileged to
// "running" with no failed unit, logs to its journal, names itself after the
// container, offers a login on the console, stops gracefully, and reboots and
// powers off from inside. The image is built once per machine (into the shared
// test image cache) and copied by later creates.
func TestDebianSystemd(t *testing.T) {
	e := newEnv(t)
	began := time.Now()
	e.must("create", "d1", "--template", "debian")
	t.Logf("first create (cold or warm image cache): %v", time.Since(began))
	began = time.Now()
	e.must("create", "d2", "--template", "debian")
	t.Logf("second create (warm image cache): %v", time.Since(began))

	e.must("start", "d1")
	waitRunning(t, e, "d1")
	if failed := e.must("exec", "d1", "--", "systemctl", "--failed", "--no-legend"); strings.TrimSpace(failed) != "" {
		t.Errorf("failed units:\n%s", failed)
	}
	if comm := strings.TrimSpace(e.must("exec", "d1", "--", "cat", "/proc/1/comm")); comm != "systemd" {
		t.Errorf("pid 1 is %q, want systemd", comm)
	}
	if uidMap := strings.Fields(e.must("exec", "d1", "--", "cat", "/proc/self/uid_map")); len(uidMap) != 3 || uidMap[1] == "0" {
		t.Errorf("uid map %v is the identity", uidMap)
	}
	if host := strings.TrimSpace(e.must("exec", "d1", "--", "hostname")); host != "d1" {
		t.Errorf("hostname %q, want d1", host)
	}
	if lines := strings.Count(e.must("exec", "d1", "--", "journalctl", "-b", "--no-pager"), "\n"); lines < 5 {
		t.Errorf("journalctl -b has %d lines", lines)
	}
	hostBoot, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if boot := e.must("exec", "d1", "--", "cat", "/proc/sys/kernel/random/boot_id"); boot == string(hostBoot) {
		t.Errorf("the container shares the host's boot id %s", boot)
	}
	consoleShows(t, e, "d1", "d1 login:")

	r := e.run("stop", "d1")
	if r.code != 0 || strings.Contains(r.stderr, "killed") {
		t.Fatalf("graceful stop of systemd: %s", r)
	}
	e.assertNoLeftovers("d1")

	e.must("start", "d1")
	waitRunning(t, e, "d1")
	before := e.info("d1").PID
	e.run("exec", "d1", "--", "systemctl", "reboot")
	waitFor(t, e, "d1", func(i info) bool { return i.State == "RUNNING" && i.PID != before && i.PID != 0 })
	waitRunning(t, e, "d1")
	e.run("exec", "d1", "--", "systemctl", "poweroff")
	waitFor(t, e, "d1", func(i info) bool { return i.State == "STOPPED" })
	waitUntil(t, "teardown after poweroff", func() bool {
		_, err := os.Stat(filepath.Join(e.root, "run", "d1.json"))
		return os.IsNotExist(err)
	})
	// The monitor removes the state as its last step and then exits; on a
	// loaded machine it can still be exiting a few ms later.
	waitUntil(t, "the monitor to exit", func() bool { return len(e.containerProcesses("d1")) == 0 })
	e.assertNoLeftovers("d1")
}

// TestDebianSysvinit: a Debian guest with sysvinit boots (a login prompt on
// the console) and stops on SIGPWR without being killed.
func TestDebianSysvinit(t *testing.T) {
	e := newEnv(t)
	e.must("create", "s1", "--template", "debian", "-o", "init=sysvinit")
	e.must("start", "s1")
	consoleShows(t, e, "s1", "s1 login:")
	if comm := strings.TrimSpace(e.must("exec", "s1", "--", "cat", "/proc/1/comm")); comm != "init" {
		t.Errorf("pid 1 is %q, want sysvinit's init", comm)
	}
	r := e.run("stop", "s1")
	if r.code != 0 || strings.Contains(r.stderr, "killed") {
		t.Fatalf("graceful stop of sysvinit: %s", r)
	}
	e.assertNoLeftovers("s1")
}

// waitRunning waits for systemd inside to finish booting and checks it says
// "running" (not "degraded").
func waitRunning(t *testing.T, e *env, name string) {
	t.Helper()
	var state string
	waitUntil(t, name+" to finish booting", func() bool {
		r := e.run("exec", name, "--", "systemctl", "is-system-running", "--wait")
		state = strings.TrimSpace(r.stdout)
		return state != "" && state != "initializing" && state != "starting" && state != "offline"
	})
	if state != "running" {
		failed := e.run("exec", name, "--", "systemctl", "--failed", "--no-pager")
		t.Fatalf("systemctl is-system-running: %q\n%s", state, failed.stdout)
	}
}

// consoleShows attaches to the console until want appears (the last output
// is replayed on attach), then detaches.
func consoleShows(t *testing.T, e *env, name, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	waitUntil(t, "the console of "+name+" to show "+want, func() bool {
		cmd := e.command(ctx, "console", name)
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		seen := make(chan bool, 1)
		go func() {
			buf := make([]byte, 4096)
			var got strings.Builder
			deadline := time.Now().Add(2 * time.Second)
			for time.Now().Before(deadline) && !strings.Contains(got.String(), want) {
				n, err := stdout.Read(buf)
				got.Write(buf[:n])
				if err != nil {
					break
				}
			}
			seen <- strings.Contains(got.String(), want)
		}()
		var ok bool
		select {
		case ok = <-seen:
		case <-time.After(3 * time.Second):
		}
		io.WriteString(stdin, "\x01q")
		stdin.Close()
		cmd.Wait()
		return ok
	})
}
