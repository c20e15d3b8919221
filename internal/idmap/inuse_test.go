package idmap

import (
	"errors"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"testing"

	"lodge/internal/testreq"
)

func TestReleaseRefusedWhileInUse(t *testing.T) {
	a := newAllocator(t, Pool{First: 100000, Size: 65536, Count: 4})
	r, err := a.Allocate("busy")
	if err != nil {
		t.Fatal(err)
	}
	running := []int{42}
	a.InUse = func(name string, got Range) ([]int, error) {
		if name != "busy" || got != r {
			t.Errorf("InUse(%q, %v), want busy, %v", name, got, r)
		}
		return running, nil
	}
	if err := a.Release("busy"); !errors.Is(err, ErrInUse) {
		t.Fatalf("Release while in use = %v, want ErrInUse", err)
	}
	if _, ok, _ := a.Lookup("busy"); !ok {
		t.Fatal("the range was released while in use")
	}
	if other, err := a.Allocate("next"); err != nil || other.Overlaps(r) {
		t.Fatalf("next allocation %v (%v) overlaps the range in use %v", other, err, r)
	}
	running = nil
	if err := a.Release("busy"); err != nil {
		t.Fatalf("Release once unused: %v", err)
	}
}

// TestProcessUses runs a process in a user namespace mapping a range and
// checks that /proc tells it uses that range and no other.
func TestProcessUses(t *testing.T) {
	if os.Geteuid() != 0 {
		testreq.Skip(t, "root", "needs root to map host ids into a user namespace; run: sudo make test")
	}
	r := Range{HostID: 3_900_000_000, Size: 65536}
	cmd := exec.Command("sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: r.IDMap(), GidMappings: r.IDMap(),
		Credential: &syscall.Credential{Uid: 0, Gid: 0},
	}
	if err := cmd.Start(); err != nil {
		testreq.Skipf(t, "userns", "cannot make a user namespace here: %v", err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	pid := cmd.Process.Pid
	if !ProcessUses(pid, r) {
		t.Errorf("process %d in a namespace mapping %s: ProcessUses = false", pid, r)
	}
	if ProcessUses(pid, Range{HostID: r.HostID + r.Size, Size: 65536}) {
		t.Errorf("process %d uses the next range too", pid)
	}
	if ProcessUses(os.Getpid(), r) {
		t.Errorf("this test process (host user namespace) uses %s", r)
	}
	if pids, err := ProcessesIn(r); err != nil || !slices.Contains(pids, pid) {
		t.Errorf("ProcessesIn(%s) = %v, %v; want %d among them", r, pids, err, pid)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if ProcessUses(pid, r) {
		t.Errorf("process %d is gone but uses %s", pid, r)
	}
}
