package manager

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"lodge/internal/events"
	"lodge/storage"
)

// Delete removes a container: its configuration, root filesystem, logs and id
// range. A running container, and one that others name in boot.after, are
// refused unless force is set, which stops it at once first (and leaves the
// others' boot.after naming a container that is gone: autostart skips them
// and says why).
func (m *Manager) Delete(ctx context.Context, name string, force bool) error {
	lock, err := m.store.Lock(ctx, name)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	if !force {
		if err := m.refuseDependents(name); err != nil {
			return err
		}
	}
	st, err := m.liveState(name)
	if err != nil {
		return err
	}
	if st != nil && !force {
		return fmt.Errorf("container %q %w (pid %d); stop it first (lodge stop %s) or delete with --force", name, ErrRunning, st.Init.PID, name)
	}
	if st != nil {
		if _, err := m.stopLocked(ctx, name, StopOptions{Force: true}); err != nil {
			return err
		}
	}
	if err := m.cleanupStale(name); err != nil {
		return err
	}
	if err := m.rangeUnused(name, force); err != nil {
		return err
	}
	m.removeMonitorGroup(name)
	// Move the container out of sight first, so that a delete interrupted while
	// removing files never leaves a half-deleted container in `lodge list`.
	trash := filepath.Join(m.store.TmpDir(), name+".delete-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	if err := os.Rename(m.store.ContainerDir(name), trash); err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	if err := m.allocator().Release(name); err != nil {
		return fmt.Errorf("release id range of %s: %w", name, err)
	}
	m.store.RemoveState(name)
	if err := m.deleteTrees(ctx, trash); err != nil {
		return fmt.Errorf("container %s is deleted but removing its root filesystem or snapshots failed: %w", name, err)
	}
	if err := removeTree(trash); err != nil {
		return fmt.Errorf("container %s is deleted but removing its files failed: %w", name, err)
	}
	m.emit(name, events.Event{Type: events.Deleted})
	return nil
}

// rangeUnused makes sure no process of the container holds ids of its range
// before the range is freed (Release checks again). With force, processes
// left (outside what stop found, say) are killed.
func (m *Manager) rangeUnused(name string, force bool) error {
	r, ok, err := m.allocator().Lookup(name)
	if err != nil || !ok {
		return err
	}
	pids, err := m.processesOf(name, r)
	if err != nil || len(pids) == 0 {
		return err
	}
	if !force {
		return fmt.Errorf("container %q %w: its processes %v still run with its ids (%s); delete with --force to kill them", name, ErrRunning, pids, r)
	}
	for _, pid := range pids {
		m.killVerified(pid, name)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if pids, err = m.processesOf(name, r); err != nil || len(pids) == 0 {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("delete %s: its processes %v still run with its ids (%s) after SIGKILL; its id range is kept", name, pids, r)
}

// killVerified kills process pid through a pidfd, checking after opening
// the pidfd that pid is still a process of the container (in its cgroup) and
// not a new process that took a freed pid.
func (m *Manager) killVerified(pid int, name string) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	if m.inGroupOf(pid, name) {
		unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
	}
}

// deleteTrees removes the root filesystem and the snapshots of the deleted
// container now at dir with the backend that made them: overlay then
// collects the shared layers nothing else stands on.
func (m *Manager) deleteTrees(ctx context.Context, dir string) error {
	backend, _, err := storage.ForContainer(m.store.Root, dir)
	if err != nil {
		return err
	}
	snaps, _ := filepath.Glob(filepath.Join(dir, "snapshots", "*", "rootfs"))
	for _, tree := range append(snaps, filepath.Join(dir, "rootfs")) {
		if err := backend.Delete(ctx, tree); err != nil {
			return err
		}
	}
	return nil
}
