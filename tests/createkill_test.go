package tests

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"lodge/storage"
)

// TestCreateKilled: kill -9 of lodge create at 10 random moments of its run
// (from a warm image cache: the copy of the root filesystem is most of it)
// leaves no process running on, and a retry of the same name works at once.
func TestCreateKilled(t *testing.T) {
	for _, template := range []string{"busybox", "debian"} {
		t.Run(template, func(t *testing.T) {
			if template == "debian" && testing.Short() {
				t.Skip("SKIPPED with -short: ten Debian creates copy gigabytes; run without -short")
			}
			e := newEnv(t)
			name := "killed-" + template
			// A full create first: it warms the image cache and measures how
			// long a create runs, the span the kills are spread over.
			began := time.Now()
			e.must("create", name, "--template", template)
			span := time.Since(began)
			e.must("delete", name)
			seed := uint64(time.Now().UnixNano())
			t.Logf("create takes %v; random seed %d", span, seed)
			rng := rand.New(rand.NewPCG(seed, 1))
			for round := range 10 {
				delay := time.Duration(rng.Int64N(int64(span)))
				completed := killCreateAfter(t, e, name, template, delay)
				t.Logf("round %d: killed after %v (the create had completed: %v)", round, delay, completed)
				if left := e.containerProcesses(""); len(left) > 0 {
					t.Fatalf("round %d: processes left running after the kill: %v", round, left)
				}
				if completed {
					// Killed after the container moved into place: it is whole.
					e.must("start", name)
					e.must("stop", "--force", name)
					e.must("delete", name)
				}
				// The retry works at once: no reservation, lock or id range
				// of the killed create stands in its way.
				e.must("create", name, "--template", template)
				if left, _ := filepath.Glob(filepath.Join(e.root, "tmp", "*")); len(left) > 0 {
					t.Errorf("round %d: leftovers in ROOT/tmp after the retry: %v", round, left)
				}
				e.must("delete", name)
			}
		})
	}
}

// killCreateAfter starts lodge create, kills it with SIGKILL after delay,
// waits until no process of it runs, and tells whether the container was
// complete (listed) by then.
func killCreateAfter(t *testing.T, e *env, name, template string, delay time.Duration) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := e.command(ctx, "create", name, "--template", template)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(delay) // picks the moment of the kill (the test tries many): no synchronisation
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	// Its children (cp writing into ROOT/tmp, say) get SIGKILL from the
	// kernel as lodge dies, before lodge is reaped: by now each is gone or
	// has the SIGKILL pending. Then give them the moment dying takes.
	for _, p := range processesWriting(e.root) {
		pid, _ := strconv.Atoi(strings.SplitN(p, ":", 2)[0])
		if !killPending(pid) && !isZombie(pid) {
			t.Errorf("a child of the killed create runs on: %s", p)
		}
	}
	waitUntil(t, "the killed create's children to die", func() bool {
		return len(e.containerProcesses("")) == 0 && len(processesWriting(e.root)) == 0
	})
	for _, i := range e.list() {
		if i.Name == name {
			return true
		}
	}
	return false
}

// processesWriting lists processes whose command line names a path under
// root (the copy of a root filesystem into ROOT/tmp, say), but the views
// server (lodge lxcfs), which outlives containers by design.
func processesWriting(root string) []string {
	entries, _ := os.ReadDir("/proc")
	var found []string
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err != nil || isZombie(pid) {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if strings.Contains(string(cmdline), root+"/") && !strings.Contains(string(cmdline), "lodge-lxcfs") {
			found = append(found, e.Name()+": "+strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	}
	return found
}

// killPending reports whether process pid has a SIGKILL pending (it is
// dying) or is gone.
func killPending(pid int) bool {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return true
	}
	const sigkill = 1 << (syscall.SIGKILL - 1)
	for _, line := range strings.Split(string(data), "\n") {
		key, value, _ := strings.Cut(line, ":")
		if key == "SigPnd" || key == "ShdPnd" {
			if mask, err := strconv.ParseUint(strings.TrimSpace(value), 16, 64); err == nil && mask&sigkill != 0 {
				return true
			}
		}
	}
	return false
}

// TestCreateReservationInUse: while a create runs, a second create of the
// name (in any letter case) is refused with the truth: who is creating it.
func TestCreateReservationInUse(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIPPED with -short: needs a Debian create (seconds of copying) to race with")
	}
	e := newEnv(t)
	// The dir backend copies the image for seconds; overlay's create is
	// over before a second create could race with it.
	e.useStorage("dir")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	first := e.command(ctx, "create", "busy1", "--template", "debian")
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	// The storage backend copies under a temporary name in the staging
	// directory and renames the tree to rootfs when it is complete.
	reservation := filepath.Join(e.root, "tmp", "busy1.create")
	waitUntil(t, "the first create to copy", func() bool {
		copying, _ := filepath.Glob(filepath.Join(reservation, storage.TempPrefix+"rootfs*"))
		return len(copying) > 0
	})
	for _, name := range []string{"busy1", "BUSY1"} {
		r := e.run("create", name, "--template", "busybox")
		if _, err := os.Stat(reservation); err != nil {
			t.Skip("SKIPPED: the first create finished before the second could race with it")
		}
		if r.code != 4 || !strings.Contains(r.stderr, "being created by another lodge (pid "+itoa(first.Process.Pid)+")") {
			t.Errorf("create %s during the first create: %s", name, r)
		}
	}
	if err := first.Wait(); err != nil {
		t.Fatalf("the first create failed: %v", err)
	}
	if infos := e.list(); len(infos) != 1 || infos[0].Name != "busy1" {
		t.Fatalf("containers: %+v", infos)
	}
}
