package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// runtime is one container manager under test. Both implementations drive
// the manager's own command-line tools, as a user would.
type runtime interface {
	Name() string
	// Container returns the name of the i-th benchmark container (from 1).
	Container(i int) string
	StartCmd(name string) []string
	StopCmd(name string, force bool) []string
	ExecCmd(name string, command ...string) []string
	FreezeCmd(name string) []string
	UnfreezeCmd(name string) []string
	// VersionCmd runs the exec tool with nothing to do: its bare start-up.
	VersionCmd() []string
	// Create makes a busybox container (untimed).
	Create(name string) error
	// Procs returns the container's processes as seen from the host; init
	// and monitor are 0 when it is not running. ProcsCmd is the command it
	// runs for that.
	Procs(name string) (procs, error)
	ProcsCmd(name string) []string
	// Destroy stops (forcibly) and deletes a container; for cleanup.
	Destroy(name string) error
}

// procs are the host pids that belong to a running container.
type procs struct {
	Init    int // the container's init
	Monitor int // the manager's per-container process: lodge-monitor, [lxc monitor]
}

// checkRunning confirms that the container runs: init has executed the
// container's /sbin/init (its command name is "init") and the monitor lives.
func checkRunning(rt runtime, name string) (procs, error) {
	p, err := rt.Procs(name)
	if err != nil {
		return p, err
	}
	if p.Init == 0 || p.Monitor == 0 {
		return p, fmt.Errorf("%s container %s is not running (init pid %d, monitor pid %d)", rt.Name(), name, p.Init, p.Monitor)
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p.Init))
	if err != nil {
		return p, fmt.Errorf("%s container %s: init (pid %d): %w", rt.Name(), name, p.Init, err)
	}
	if c := strings.TrimSpace(string(comm)); c != "init" {
		return p, fmt.Errorf("%s container %s: pid %d runs %q, not init", rt.Name(), name, p.Init, c)
	}
	return p, nil
}

// waitGone waits until process pid has exited (it need not be our child),
// so that one run's teardown never overlaps the next measurement.
func waitGone(ctx context.Context, pid int, timeout time.Duration) error {
	if pid <= 0 {
		return nil
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err == unix.ESRCH {
		return nil
	}
	if err != nil {
		return fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	defer unix.Close(fd)
	deadline := time.Now().Add(timeout)
	for ctx.Err() == nil {
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("process %d still runs after %v", pid, timeout)
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(min(left, 100*time.Millisecond).Milliseconds())+1)
		if err == nil && n > 0 {
			return nil
		}
		if err != nil && err != unix.EINTR {
			return fmt.Errorf("wait for process %d: %w", pid, err)
		}
	}
	return ctx.Err()
}
