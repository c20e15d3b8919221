package tests

import (
	"context"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCopyInterrupted: Ctrl-C (SIGINT) part way through a full copy, a
// snapshot and a snapshot restore leaves the old state: no copy listed, no
// new snapshot, the container as it was, nothing temporary left; a retry
// succeeds. The dir backend copies a Debian tree for seconds, long enough
// to interrupt it in the middle.
func TestCopyInterrupted(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIPPED with -short: copies a Debian tree several times")
	}
	e := newEnv(t)
	e.useStorage("dir")
	e.must("create", "ci", "--template", "debian")
	e.must("snapshot", "create", "ci", "base")
	interrupt := func(args ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := e.command(ctx, args...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond) // into the copy (not a timing assertion)
		cmd.Process.Signal(syscall.SIGINT)
		if err := cmd.Wait(); err == nil {
			t.Logf("lodge %v finished before Ctrl-C reached it", args)
		}
		if left := tempEntries(e.root); len(left) > 0 {
			t.Errorf("after Ctrl-C of lodge %v: temporary trees left: %v", args, left)
		}
		if left, _ := filepath.Glob(filepath.Join(e.root, "tmp", "*")); len(left) > 0 {
			t.Errorf("after Ctrl-C of lodge %v: left in ROOT/tmp: %v", args, left)
		}
	}
	interrupt("copy", "ci", "ci2")
	if _, ok := e.listed("ci2"); ok {
		t.Error("an interrupted copy is listed")
	}
	interrupt("snapshot", "create", "ci", "s2")
	if out := e.must("snapshot", "list", "ci"); snapshotListed(out, "s2") {
		t.Errorf("an interrupted snapshot is listed:\n%s", out)
	}
	e.must("copy", "ci", "ci2")
	e.must("snapshot", "create", "ci", "s2")
	// An interrupted restore may have swapped the tree but not the
	// configuration: the container is refused until the restore is run
	// again (TestRestoreKilled checks what list says meanwhile).
	interrupt("snapshot", "restore", "ci", "base")
	e.must("snapshot", "restore", "ci", "base")
	e.must("start", "ci")
	waitRunning(t, e, "ci")
	e.must("start", "ci2")
	waitRunning(t, e, "ci2")
}

// snapshotListed tells whether `lodge snapshot list` output names snap.
func snapshotListed(out, snap string) bool {
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == snap {
			return true
		}
	}
	return false
}
