package tests

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestExecNotRoot: lodge exec run by another user exits 5 with the hint to
// use root, as every other command does (not 125, exec's own failures).
func TestExecNotRoot(t *testing.T) {
	e := newEnv(t)
	for _, args := range [][]string{{"exec", "c1", "--", "true"}, {"list"}} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		cmd := e.command(ctx, args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		cancel()
		if code := cmd.ProcessState.ExitCode(); code != 5 || !strings.Contains(string(out), "must run as root") {
			t.Errorf("lodge %v as nobody: exit %d (%v), output %q; want exit 5 and a hint to use root", args, code, err, out)
		}
	}
}

// TestNamesUniqueRegardlessOfCase: Web next to web is refused, clearly.
func TestNamesUniqueRegardlessOfCase(t *testing.T) {
	e := newEnv(t)
	e.createBusybox("web")
	r := e.expectFail(4, "regardless of letter case", "create", "Web", "--template", "busybox")
	if !strings.Contains(r.stderr, `"web"`) {
		t.Errorf("the refusal does not name the existing container: %s", r.stderr)
	}
	if infos := e.list(); len(infos) != 1 {
		t.Errorf("containers after the refused create: %+v", infos)
	}
	if left, _ := filepath.Glob(filepath.Join(e.root, "tmp", "*")); len(left) > 0 {
		t.Errorf("the refused create left %v", left)
	}
}

// TestDebianQuickStartAndStopWithoutMonitor: README's quick start, as
// written: systemctl answers right after lodge start. Then, with its monitor
// killed, the systemd container stops gracefully within its default stop
// timeout (30s; it takes seconds). It used to be killed at the timeout: with
// the console's pty master gone with the monitor, systemd spent a second per
// status line retrying /dev/console, about a minute for a Debian shutdown.
func TestDebianQuickStartAndStopWithoutMonitor(t *testing.T) {
	e := newEnv(t)
	e.must("create", "qs1", "--template", "debian", "-c", "limits.memory=512MiB")
	for round := range 3 {
		e.must("start", "qs1")
		// Once, not polled: this is what a user types.
		r := e.run("exec", "qs1", "--", "systemctl", "is-system-running", "--wait")
		if state := strings.TrimSpace(r.stdout); r.code != 0 || state != "running" {
			t.Fatalf("round %d: systemctl is-system-running --wait right after start: %s", round, r)
		}
		if round < 2 {
			e.must("stop", "qs1")
		}
	}
	i := e.info("qs1")
	killMonitor(t, e, "qs1", i.MonitorPID)
	began := time.Now()
	r := e.run("stop", "qs1")
	t.Logf("stop without monitor took %v", time.Since(began))
	if r.code != 0 || strings.Contains(r.stderr, "killed") {
		t.Fatalf("graceful stop of systemd without its monitor: %s", r)
	}
	if after := e.info("qs1"); after.State != "STOPPED" {
		t.Fatalf("after stop: %+v", after)
	}
	e.assertNoLeftovers("qs1")
	// systemd shut down (not killed): its last boot's journal says so.
	e.must("start", "qs1")
	journal := e.must("exec", "qs1", "--", "journalctl", "-b", "-1", "--no-pager", "-q")
	if !strings.Contains(journal, "Received SIGRTMIN+3") || !strings.Contains(journal, "Reached target") {
		t.Errorf("the previous boot's journal shows no shutdown:\n%s", tail(journal, 20))
	}
	e.must("stop", "qs1")
	if _, err := os.Stat(filepath.Join(e.root, "run", "qs1.json")); !os.IsNotExist(err) {
		t.Errorf("state file left after stop: %v", err)
	}
}

func tail(text string, n int) string {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
