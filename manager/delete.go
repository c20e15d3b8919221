package manager

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Delete removes a container: its configuration, root filesystem, logs and id
// range. A running container is refused unless force is set, which stops it
// at once first.
func (m *Manager) Delete(ctx context.Context, name string, force bool) error {
	lock, err := m.store.Lock(name)
	if err != nil {
		return err
	}
	defer lock.Unlock()
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
	if err := removeTree(trash); err != nil {
		return fmt.Errorf("container %s is deleted but removing its files failed: %w", name, err)
	}
	return nil
}
