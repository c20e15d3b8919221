package tests

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// bigFile is written into the sources of the kill tests so that a copy or a
// restore runs long enough for random kills to land in all of its steps.
const bigFile = "dd if=/dev/urandom of=/big bs=1M count=48 2>/dev/null"

// killAfter runs lodge with args, SIGKILLs it after delay and reaps it.
func killAfter(t *testing.T, e *env, delay time.Duration, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := e.command(ctx, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(delay) // picks the moment of the kill (the test tries many): no synchronisation
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
}

// timed runs lodge with args, which must succeed, and says how long it ran.
func timed(e *env, args ...string) time.Duration {
	e.t.Helper()
	began := time.Now()
	e.must(args...)
	return time.Since(began)
}

func newRand(t *testing.T) *rand.Rand {
	seed := uint64(time.Now().UnixNano())
	t.Logf("random seed %d", seed)
	return rand.New(rand.NewPCG(seed, 2))
}

// TestCopyKilled: kill -9 of lodge copy at 10 random moments, of a stopped
// source and of a running one (frozen for the cut): lodge list tells the
// truth every time (the copy is absent or whole, the source healthy and not
// left frozen), and a retry succeeds.
func TestCopyKilled(t *testing.T) {
	e := newEnv(t)
	e.createBusybox("kc")
	e.must("start", "kc")
	e.must("exec", "kc", "--", "sh", "-c", bigFile)
	e.must("copy", "kc", "kc-probe") // warms the page cache: the next copies run at this speed
	e.must("delete", "kc-probe")
	span := timed(e, "copy", "kc", "kc-probe")
	t.Logf("a copy of the running source takes %v", span)
	e.must("delete", "kc-probe")
	e.must("stop", "kc")
	rng := newRand(t)
	for round := range 10 {
		running := round%2 == 1
		if running {
			e.must("start", "kc")
		}
		// A little past the span too, so that some copies complete.
		delay := time.Duration(rng.Int64N(int64(span) * 5 / 4))
		killAfter(t, e, delay, "copy", "kc", "kc2")
		if _, err := os.Stat(filepath.Join(e.root, "containers", "kc", "frozen-by")); err == nil {
			t.Logf("round %d: the kill left kc frozen (list thaws it)", round)
		}
		src, ok := e.listed("kc")
		wantState := map[bool]string{false: "STOPPED", true: "RUNNING"}[running]
		if !ok || src.Error != "" || src.State != wantState {
			t.Fatalf("round %d (killed after %v): source listed as %+v, want %s and healthy", round, delay, src, wantState)
		}
		if running {
			e.must("exec", "kc", "--", "true") // thawed: it runs commands
		}
		copied, ok := e.listed("kc2")
		t.Logf("round %d: killed after %v, source running %v, copy complete %v", round, delay, running, ok)
		if ok {
			if copied.Error != "" {
				t.Fatalf("round %d: the copy is listed with an error: %s", round, copied.Error)
			}
			checkIdentity(t, e, "kc2") // listed means whole: it boots as itself
			e.must("delete", "--force", "kc2")
		}
		e.must("copy", "kc", "kc2")
		if left, _ := filepath.Glob(filepath.Join(e.root, "tmp", "*")); len(left) > 0 {
			t.Errorf("round %d: leftovers in ROOT/tmp after the retry: %v", round, left)
		}
		e.must("delete", "kc2")
		if running {
			e.must("stop", "--force", "kc")
		}
	}
}

// TestRestoreKilled: kill -9 of lodge snapshot restore at 10 random
// moments: lodge list shows the container whole (old or restored: checked
// by booting it) or says the restore was interrupted (and start refuses
// it); a retry of the restore succeeds and brings the snapshot back.
func TestRestoreKilled(t *testing.T) {
	e := newEnv(t)
	e.createBusybox("kr")
	e.must("start", "kr")
	e.must("exec", "kr", "--", "sh", "-c", "echo restored > /data; "+bigFile)
	e.must("stop", "--force", "kr")
	e.must("snapshot", "create", "kr", "s1")
	change := func() {
		e.must("start", "kr")
		e.must("exec", "kr", "--", "sh", "-c", "echo changed > /data; rm /big")
		e.must("stop", "--force", "kr")
	}
	// state boots the container and says which of the two trees it has,
	// checking that tree is whole.
	state := func() string {
		e.must("start", "kr")
		defer e.must("stop", "--force", "kr")
		data := strings.TrimSpace(e.must("exec", "kr", "--", "cat", "/data"))
		size := strings.TrimSpace(e.run("exec", "kr", "--", "sh", "-c", "wc -c < /big").stdout)
		switch {
		case data == "restored" && size == "50331648", data == "changed" && size == "":
			return data
		}
		t.Fatalf("kr is neither the snapshot nor the changed tree: /data %q, /big %q bytes", data, size)
		return ""
	}
	change()
	span := timed(e, "snapshot", "restore", "kr", "s1")
	t.Logf("a restore takes %v", span)
	change()
	rng := newRand(t)
	for round := range 10 {
		delay := time.Duration(rng.Int64N(int64(span) * 5 / 4))
		killAfter(t, e, delay, "snapshot", "restore", "kr", "s1")
		i, ok := e.listed("kr")
		if !ok {
			t.Fatalf("round %d: kr is not listed after a killed restore", round)
		}
		switch {
		case strings.Contains(i.Error, "restore of its snapshot s1 was interrupted"):
			t.Logf("round %d: killed after %v: list says the restore was interrupted", round, delay)
			e.expectFail(1, "lodge snapshot restore kr s1", "start", "kr")
		case i.Error != "":
			t.Fatalf("round %d: kr listed with error %q", round, i.Error)
		default:
			t.Logf("round %d: killed after %v: listed healthy, tree %s", round, delay, state())
		}
		e.must("snapshot", "restore", "kr", "s1")
		if i, _ := e.listed("kr"); i.Error != "" {
			t.Fatalf("round %d: after the retry kr is listed with error %q", round, i.Error)
		}
		if got := state(); got != "restored" {
			t.Fatalf("round %d: after the retried restore the tree is %q", round, got)
		}
		if n := len(e.storageInfo("kr").Storage.Snapshots); n != 1 {
			t.Fatalf("round %d: %d snapshots listed, want s1 alone", round, n)
		}
		change()
	}
}

// TestSnapshotCreateKilled: kill -9 of lodge snapshot create of a running
// container at 10 random moments: the container is listed healthy and
// running (thawed), only complete snapshots are listed, and a retry under
// the same name succeeds and leaves no temporary tree behind.
func TestSnapshotCreateKilled(t *testing.T) {
	e := newEnv(t)
	e.createBusybox("ksc")
	e.must("start", "ksc")
	e.must("exec", "ksc", "--", "sh", "-c", bigFile)
	e.must("snapshot", "create", "ksc", "warm")
	span := timed(e, "snapshot", "create", "ksc", "probe")
	t.Logf("a snapshot of the running container takes %v", span)
	e.must("snapshot", "delete", "ksc", "warm")
	e.must("snapshot", "delete", "ksc", "probe")
	rng := newRand(t)
	for round := range 10 {
		delay := time.Duration(rng.Int64N(int64(span) * 5 / 4))
		snap := "s" + itoa(round)
		killAfter(t, e, delay, "snapshot", "create", "ksc", snap)
		i, ok := e.listed("ksc")
		if !ok || i.Error != "" || i.State != "RUNNING" {
			t.Fatalf("round %d (killed after %v): listed as %+v, want RUNNING and healthy", round, delay, i)
		}
		e.must("exec", "ksc", "--", "true")
		completed := strings.Contains(e.must("snapshot", "list", "ksc"), snap+" ")
		t.Logf("round %d: killed after %v, snapshot complete %v", round, delay, completed)
		if completed {
			e.must("snapshot", "delete", "ksc", snap)
		}
		e.must("snapshot", "create", "ksc", snap)
		if left, _ := filepath.Glob(filepath.Join(e.root, "containers", "ksc", "snapshots", ".*")); len(left) > 0 {
			t.Errorf("round %d: temporary trees left after the retry: %v", round, left)
		}
	}
	if n := len(e.storageInfo("ksc").Storage.Snapshots); n != 10 {
		t.Errorf("%d snapshots listed, want s0..s9", n)
	}
}
