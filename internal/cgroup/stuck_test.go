package cgroup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"lodge/internal/testreq"
)

// TestFreezeStuckTask: a task that cannot freeze (a stat waiting, killable
// only, for a FUSE connection whose server, this test, never answers the
// kernel's INIT) keeps a group from freezing on the cgroup2 freezer: the
// freeze gives up at its deadline, names the task, its state D and its
// kernel stack, and thaws the group again. The v1 freezer freezes such a
// task in place where the FUSE wait is freezable (6.18 here): then the v1
// case skips.
func TestFreezeStuckTask(t *testing.T) {
	h := rootHost(t)
	g := testGroup(t, h, "stuck")
	if err := g.Create(); err != nil {
		t.Fatal(err)
	}
	dev, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		testreq.Skipf(t, "fuse", "open /dev/fuse: %v", err)
	}
	mnt := t.TempDir()
	if err := unix.Mount("lodge-stuck-test", mnt, "fuse", unix.MS_NOSUID|unix.MS_NODEV,
		fmt.Sprintf("fd=%d,rootmode=40000,user_id=0,group_id=0", dev.Fd())); err != nil {
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
	pid := cmd.Process.Pid
	t.Cleanup(func() {
		// Thawed on both freezers first: a task frozen by the v1 freezer
		// does not even take SIGKILL.
		if fr, ok := g.v1Freezer(); ok {
			fr.thaw()
		}
		g.Thaw()
		dev.Close() // aborts the connection: the stat fails and exits
		unix.Unmount(mnt, unix.MNT_DETACH)
		cmd.Process.Kill()
		cmd.Wait()
	})
	if err := g.AddProcess(pid); err != nil {
		t.Fatal(err)
	}
	in.Write([]byte("\n"))
	// In D inside the FUSE request's wait, by its kernel stack: a D seen
	// earlier (exec, a page fault) would let the freeze below catch the
	// task before it blocks, in the wait's interruptible first part.
	waitFor(t, time.Minute, "the stat to block on the FUSE connection", func() bool {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		stack, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stack", pid))
		return err == nil && strings.Contains(s, "(stat)") && i >= 0 && s[i+2] == 'D' && strings.Contains(string(stack), "fuse")
	})
	type named struct {
		name string
		fr   freezer
	}
	freezers := []named{{"default", g.freezer()}}
	if fr, ok := g.v1Freezer(); ok {
		freezers = append(freezers, named{"v1", fr})
	}
	if os.Getenv("STUCK_V1_FIRST") != "" {
		slices.Reverse(freezers)
	}
	for _, f := range freezers {
		fr := f.fr
		t.Run(f.name, func(t *testing.T) {
			t.Logf("freezer %T", fr)
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			err := fr.freeze(ctx)
			if _, v1 := fr.(v1Freezer); v1 && err == nil {
				fr.thaw()
				t.Skip("the v1 freezer froze the task in place: this kernel's FUSE request wait is freezable, so a task stuck for the v1 freezer cannot be made this way (the v1 wait and report are the same code; see TestFreezeStuckThaws)")
			}
			var nf *NotFrozenError
			if !errors.As(err, &nf) || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("freeze = %v, want a NotFrozenError for the deadline", err)
			}
			t.Logf("%v", err)
			if len(nf.Tasks) != 1 || nf.Tasks[0].PID != pid || nf.Tasks[0].State != "D" || !strings.Contains(nf.Tasks[0].Where, "fuse") {
				t.Errorf("stuck tasks = %+v, want the stat (pid %d) in D in a fuse function", nf.Tasks, pid)
			}
			if asked, err := fr.(interface{ requested() (bool, error) }).requested(); err != nil || asked {
				t.Errorf("after giving up: freeze still requested (%v, %v), want thawed", asked, err)
			}
		})
	}
}
