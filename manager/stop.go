package manager

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"lodge/config"
	"lodge/manager/cgroup"
	"lodge/manager/monitor"
	"lodge/manager/store"
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
	lock, err := m.store.Lock(name)
	if err != nil {
		return StopResult{}, err
	}
	defer lock.Unlock()
	return m.stopLocked(ctx, name, opts)
}

func (m *Manager) stopLocked(ctx context.Context, name string, opts StopOptions) (StopResult, error) {
	st, err := m.running(name)
	if err != nil {
		if errors.Is(err, ErrNotRunning) {
			m.cleanupStale(name)
		}
		return StopResult{}, err
	}
	req := monitor.Request{Op: "stop", Timeout: opts.Timeout, Force: opts.Force}
	resp, err := monitor.Do(ctx, m.store.SocketPath(name), req)
	if errors.Is(err, monitor.ErrNoMonitor) {
		return m.stopWithoutMonitor(name, st, opts)
	}
	if err != nil {
		return StopResult{}, fmt.Errorf("stop %s: %w", name, err)
	}
	return StopResult{Killed: resp.Killed}, nil
}

// stopWithoutMonitor stops a container whose monitor is gone, from the
// recorded state: signal init through a pidfd (immune to pid reuse), wait for
// it, kill the cgroup if needed, then clean up.
func (m *Manager) stopWithoutMonitor(name string, st *store.State, opts StopOptions) (StopResult, error) {
	pidfd, err := openPidfd(st.Init)
	if err != nil {
		return StopResult{}, err
	}
	defer unix.Close(pidfd)
	group := cgroup.Open(st.Cgroups)
	killed := opts.Force
	if !opts.Force {
		timeout, err := m.stopTimeout(name, opts)
		if err != nil {
			return StopResult{}, err
		}
		unix.PidfdSendSignal(pidfd, syscall.Signal(st.StopSignal), nil, 0)
		killed = !waitPidfd(pidfd, timeout)
	}
	if killed {
		unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0)
		waitPidfd(pidfd, 10*time.Second)
	}
	if err := destroyGroup(group); err != nil {
		return StopResult{}, fmt.Errorf("stop %s: %w", name, err)
	}
	m.store.RemoveState(name)
	return StopResult{Killed: killed}, nil
}

func (m *Manager) stopTimeout(name string, opts StopOptions) (time.Duration, error) {
	if opts.Timeout > 0 {
		return opts.Timeout, nil
	}
	cfg, err := config.Load(m.store.ConfigPath(name))
	if err != nil {
		return 0, invalid(err)
	}
	return cfg.Init.StopTimeout.Std(), nil
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
	lock, err := m.store.Lock(name)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	if _, err := m.stopLocked(ctx, name, opts); err != nil && !errors.Is(err, ErrNotRunning) {
		return err
	}
	return m.startLocked(ctx, name, progress)
}
