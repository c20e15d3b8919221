package manager

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"lodge/config"
	"lodge/internal/cgroup"
	"lodge/internal/events"
	"lodge/internal/store"
	"lodge/manager/monitor"
)

// StopOptions says how to stop a container.
type StopOptions struct {
	Timeout time.Duration // grace period before the kill; 0 means init.stop_timeout
	Force   bool          // kill at once
}

// StopResult says how the container stopped.
type StopResult struct {
	Killed bool // init did not stop within the timeout (or --force) and was killed
}

// Stop shuts a container down: the stop signal its init expects, then after
// the timeout a kill of everything in its cgroup. It works without the
// container's monitor too.
func (m *Manager) Stop(ctx context.Context, name string, opts StopOptions) (StopResult, error) {
	lock, err := m.store.Lock(ctx, name)
	if err != nil {
		return StopResult{}, err
	}
	defer lock.Unlock()
	res, err := m.stopLocked(ctx, name, opts)
	if err == nil {
		// A plain stop of a running container: the next start boots. A
		// stateful stop whose CRIU resumed the tree instead of stopping
		// it (its lodge killed in between) may have left the marker.
		os.Remove(m.resumeMarker(name))
	}
	return res, err
}

func (m *Manager) stopLocked(ctx context.Context, name string, opts StopOptions) (StopResult, error) {
	obs, err := m.observe(name, nil)
	if err != nil {
		return StopResult{}, err
	}
	st := obs.st
	if st == nil {
		if err := m.cleanupStale(name); err != nil {
			return StopResult{}, err
		}
		return StopResult{}, fmt.Errorf("container %q %w; start it first: lodge start %s", name, ErrNotRunning, name)
	}
	// A frozen init cannot take its stop signal: thaw it first.
	if err := m.thawForStop(name, st); err != nil {
		return StopResult{}, err
	}
	if obs.fromKernel {
		// Record what the kernel says: a monitor resuming from its idle
		// watcher to carry out the stop reads its container from this file.
		if err := m.store.WriteState(st); err != nil {
			return StopResult{}, fmt.Errorf("stop %s: %w", name, err)
		}
	}
	// The monitor answers, then removes its cgroup as it exits: a start
	// right after the stop (restart) must not have its new monitor's cgroup
	// removed from under it, so the stop returns once the monitor is gone.
	monitorFD, monitorErr := openPidfd(st.Monitor)
	if monitorErr == nil {
		defer unix.Close(monitorFD)
	}
	req := monitor.Request{Op: "stop", Timeout: opts.Timeout, Force: opts.Force}
	resp, err := monitor.Do(ctx, m.store.SocketPath(name), req)
	if errors.Is(err, monitor.ErrNoMonitor) || (err != nil && ctx.Err() == nil && !st.Monitor.Alive()) {
		// No monitor, or it died on the way: stop the container ourselves.
		return m.stopWithoutMonitor(name, st, opts)
	}
	if err != nil {
		return StopResult{}, fmt.Errorf("stop %s: %w", name, err)
	}
	if monitorErr == nil {
		waitPidfd(monitorFD, 5*time.Second)
	}
	return StopResult{Killed: resp.Killed}, nil
}

// stopWithoutMonitor stops a container whose monitor is gone, from its state:
// signal init through a pidfd (immune to pid reuse), wait for it, kill the
// cgroup if needed, then clean up. A container found in the kernel without
// its init (only stragglers left) is killed.
func (m *Manager) stopWithoutMonitor(name string, st *store.State, opts StopOptions) (StopResult, error) {
	group := cgroup.Open(st.Cgroups)
	killed := opts.Force
	if pidfd, err := openPidfd(st.Init); err == nil {
		defer unix.Close(pidfd)
		if !opts.Force {
			timeout := m.stopTimeout(name, opts)
			signalStop(pidfd, st)
			killed = !waitPidfd(pidfd, timeout)
		}
		if killed {
			unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0)
			waitPidfd(pidfd, 10*time.Second)
		}
	} else if st.Init.Alive() {
		return StopResult{}, err
	} else {
		killed = true // no init to ask: what is left is killed
	}
	if err := destroyGroup(group); err != nil {
		return StopResult{}, fmt.Errorf("stop %s: %w", name, err)
	}
	m.removeMonitorGroup(name)
	// A monitor killed in a restore that went through left its staging.
	if err := monitor.RemoveStaging(monitor.RestoreStaging(m.store, name)); err != nil {
		return StopResult{}, fmt.Errorf("stop %s: %w", name, err)
	}
	if err := m.releaseNICs(name); err != nil {
		return StopResult{}, fmt.Errorf("stop %s: %w", name, err)
	}
	m.store.RemoveState(name)
	m.emit(name, stoppedWithoutMonitor(killed))
	return StopResult{Killed: killed}, nil
}

// signalStop asks init to shut down. systemd is first told to stop writing
// status lines to the console: with the monitor gone, nobody holds the
// console's pty master, so each open of /dev/console fails with EIO, which
// systemd retries for a second per status line (open_terminal), making a
// shutdown of dozens of lines outlast any stop timeout.
func signalStop(pidfd int, st *store.State) {
	if isSystemd(st.Init.PID) {
		const showStatusOff = 34 + 21 // SIGRTMIN+21, see systemd(1)
		if unix.PidfdSendSignal(pidfd, syscall.Signal(showStatusOff), nil, 0) == nil {
			waitSignalTaken(st.Init.PID, showStatusOff, time.Second)
		}
	}
	unix.PidfdSendSignal(pidfd, syscall.Signal(st.StopSignal), nil, 0)
}

// waitSignalTaken waits (boundedly) until signal sig is no longer pending for
// process pid: init has read it, and a signal sent next is handled after it.
func waitSignalTaken(pid, sig int, limit time.Duration) {
	bit := uint64(1) << (sig - 1)
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		pending := statusField(pid, "ShdPnd")
		if len(pending) != 1 {
			return
		}
		mask, err := strconv.ParseUint(pending[0], 16, 64)
		if err != nil || mask&bit == 0 {
			return
		}
	}
}

// stopTimeout is the grace period of a stop: the one asked for, else the
// container's init.stop_timeout, else (its configuration is unreadable) the
// default one.
func (m *Manager) stopTimeout(name string, opts StopOptions) time.Duration {
	if opts.Timeout > 0 {
		return opts.Timeout
	}
	cfg, err := config.Load(m.store.ConfigPath(name))
	if err != nil {
		cfg = config.Default()
	}
	return cfg.Init.StopTimeout.Std()
}

// openPidfd opens a pidfd for p and checks that it is still the same process.
func openPidfd(p store.Process) (int, error) {
	fd, err := unix.PidfdOpen(p.PID, 0)
	if err != nil {
		return -1, fmt.Errorf("open init process %d: %w", p.PID, err)
	}
	if !p.Alive() {
		unix.Close(fd)
		return -1, fmt.Errorf("init process %d is gone", p.PID)
	}
	return fd, nil
}

// waitPidfd waits until the process exits; false on timeout.
func waitPidfd(pidfd int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(left.Milliseconds())+1)
		if err == unix.EINTR {
			continue
		}
		return err == nil && n > 0
	}
}

// destroyGroup kills what is left in a cgroup and removes it.
func destroyGroup(group *cgroup.Group) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := group.Kill(ctx); err != nil {
		return err
	}
	return group.Destroy()
}

// Restart stops a running container (if it runs) and starts it again.
func (m *Manager) Restart(ctx context.Context, name string, opts StopOptions, progress func(string, ...any)) error {
	lock, err := m.store.Lock(ctx, name)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	if _, err := m.stopLocked(ctx, name, opts); err == nil {
		os.Remove(m.resumeMarker(name)) // stopped plainly, as by Stop: it boots
	} else if !errors.Is(err, ErrNotRunning) {
		return err
	}
	return m.startLocked(ctx, name, progress)
}

// stoppedWithoutMonitor is the stopped event of a stop that found no
// monitor to ask (it reports stops it carries out itself: monitor/events.go).
func stoppedWithoutMonitor(killed bool) events.Event {
	if killed {
		return events.Event{Type: events.Stopped, Reason: events.ReasonKilled}
	}
	return events.Event{Type: events.Stopped, Reason: events.ReasonRequested}
}
