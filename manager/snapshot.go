package manager

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"lodge/internal/atomicfile"
	"lodge/storage"
)

// A snapshot is ROOT/containers/NAME/snapshots/SNAP/: the tree (rootfs/,
// made by the container's backend), the configuration as it was
// (config.toml) and snapshot.json. It is built under a storage.TempPrefix
// name and renamed into place last, so a snapshot directory with its
// snapshot.json is complete, and anything else is what RemoveStale clears.

const snapshotFile = "snapshot.json"

// SnapshotInfo describes one snapshot.
type SnapshotInfo struct {
	Name    string    `json:"name" yaml:"name"`
	Created time.Time `json:"created" yaml:"created"`
	// Bytes is the disk space its tree takes, as its backend counts it
	// (blocks shared with the container or other snapshots may be counted
	// in both).
	Bytes int64 `json:"bytes" yaml:"bytes"`
	// Error says why its size is unknown.
	Error string `json:"error,omitempty" yaml:"error,omitempty"`
}

// snapshotMeta is snapshot.json.
type snapshotMeta struct {
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	Running bool      `json:"running"` // taken of a running (frozen) container
}

// maxSnapshotName bounds a snapshot's name (a single path element).
const maxSnapshotName = 63

// ValidateSnapshotName checks a snapshot name: ASCII letters, digits, dots,
// dashes and underscores, starting with a letter or digit, 1-63 characters:
// a safe single path element that never starts with a dot (lodge's own
// temporary entries do) and never holds a '/' (NAME/SNAP names a snapshot).
func ValidateSnapshotName(snap string) error {
	problem := ""
	switch {
	case snap == "":
		problem = "must not be empty"
	case len(snap) > maxSnapshotName:
		problem = fmt.Sprintf("is %d characters long", len(snap))
	case !isAlnum(snap[0]):
		problem = "must start with a letter or digit"
	}
	for i := 0; problem == "" && i < len(snap); i++ {
		if c := snap[i]; !isAlnum(c) && c != '.' && c != '-' && c != '_' {
			problem = fmt.Sprintf("must not contain %q", rune(c))
		}
	}
	if problem != "" {
		return fmt.Errorf("invalid snapshot name %q: %s; use letters, digits, '.', '-' and '_', 1-63 characters", snap, problem)
	}
	return nil
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// snapshotDir returns the directory of an existing, complete snapshot.
func (m *Manager) snapshotDir(name, snap string) (string, error) {
	if err := ValidateSnapshotName(snap); err != nil {
		return "", invalid(err)
	}
	if err := m.store.MustExist(name); err != nil {
		return "", err
	}
	dir := filepath.Join(m.snapshotsDir(name), snap)
	if _, err := os.Stat(filepath.Join(dir, snapshotFile)); err != nil {
		return "", kindError{fmt.Errorf("container %q has no snapshot %q (see: lodge snapshot list %s)", name, snap, name), ErrNotFound}
	}
	return dir, nil
}

// SnapshotResult says what SnapshotCreate did.
type SnapshotResult struct {
	Name   string
	Frozen Frozen
}

// SnapshotCreate records the container's tree and configuration as
// snapshot snap ("" picks the next free snapN). A running container is
// frozen for the backend's cut only, so the snapshot is consistent.
func (m *Manager) SnapshotCreate(ctx context.Context, name, snap string) (SnapshotResult, error) {
	if snap != "" {
		if err := ValidateSnapshotName(snap); err != nil {
			return SnapshotResult{}, invalid(err)
		}
	}
	lock, err := m.store.Lock(ctx, name)
	if err != nil {
		return SnapshotResult{}, err
	}
	defer lock.Unlock()
	if err := m.prepareStorage(name); err != nil {
		return SnapshotResult{}, err
	}
	if snap == "" {
		if snap, err = m.nextSnapshotName(name); err != nil {
			return SnapshotResult{}, err
		}
	}
	final := filepath.Join(m.snapshotsDir(name), snap)
	if _, err := os.Lstat(final); err == nil {
		return SnapshotResult{}, fmt.Errorf("container %q: snapshot %q %w; pick another name or delete it first: lodge snapshot delete %s %s", name, snap, ErrExists, name, snap)
	}
	if err := os.MkdirAll(m.snapshotsDir(name), 0o700); err != nil {
		return SnapshotResult{}, err
	}
	res := SnapshotResult{Name: snap}
	res.Frozen, err = m.buildSnapshot(ctx, name, snap, final)
	return res, err
}

// buildSnapshot makes the snapshot under a temporary name and renames it
// into place; on failure the temporary tree goes through the backend.
func (m *Manager) buildSnapshot(ctx context.Context, name, snap, final string) (Frozen, error) {
	b, _, err := storage.ForContainer(m.store.Root, m.store.ContainerDir(name))
	if err != nil {
		return Frozen{}, err
	}
	tmp := filepath.Join(m.snapshotsDir(name), fmt.Sprintf("%s%s.%d", storage.TempPrefix, snap, os.Getpid()))
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return Frozen{}, fmt.Errorf("snapshot %s of %s: %w", snap, name, err)
	}
	ok := false
	defer func() {
		if !ok {
			b.Delete(context.Background(), filepath.Join(tmp, "rootfs"))
			os.RemoveAll(tmp)
		}
	}()
	// The configuration first: nothing changes it while we hold the lock.
	if err := copyFile(m.store.ConfigPath(name), filepath.Join(tmp, "config.toml")); err != nil {
		return Frozen{}, fmt.Errorf("snapshot %s of %s: %w", snap, name, err)
	}
	st, err := m.liveState(name)
	if err != nil {
		return Frozen{}, err
	}
	cut := func(live bool) func() error {
		return func() error {
			return b.Snapshot(ctx, m.store.RootfsPath(name), filepath.Join(tmp, "rootfs"), storage.Options{Live: live})
		}
	}
	var frozen Frozen
	if st != nil {
		frozen, err = m.frozenCall(ctx, name, st, cut(true))
	} else {
		err = cut(false)()
	}
	if err != nil {
		return frozen, fmt.Errorf("snapshot %s of %s: %w", snap, name, err)
	}
	meta := snapshotMeta{Name: snap, Created: time.Now().UTC(), Running: st != nil}
	data, _ := json.MarshalIndent(meta, "", "  ")
	if err := atomicfile.Write(filepath.Join(tmp, snapshotFile), append(data, '\n'), 0o600); err != nil {
		return frozen, err
	}
	if err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, final, unix.RENAME_NOREPLACE); err != nil {
		return frozen, fmt.Errorf("snapshot %s of %s: move into place: %w", snap, name, err)
	}
	ok = true
	return frozen, nil
}

// nextSnapshotName is snapN for the smallest N above every existing snapN,
// so that default names follow the order they were taken in.
func (m *Manager) nextSnapshotName(name string) (string, error) {
	names, err := m.snapshotNames(name)
	if err != nil {
		return "", err
	}
	next := 0
	for _, n := range names {
		if i, err := strconv.Atoi(strings.TrimPrefix(n, "snap")); err == nil && strings.HasPrefix(n, "snap") && i >= next {
			next = i + 1
		}
	}
	return "snap" + strconv.Itoa(next), nil
}

// snapshotNames lists the container's complete snapshots (with a
// snapshot.json), skipping what interrupted operations left.
func (m *Manager) snapshotNames(name string) ([]string, error) {
	entries, err := os.ReadDir(m.snapshotsDir(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("snapshots of %s: %w", name, err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") || ValidateSnapshotName(e.Name()) != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(m.snapshotsDir(name), e.Name(), snapshotFile)); err == nil {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// Snapshots lists the container's snapshots, oldest first, with their sizes.
func (m *Manager) Snapshots(ctx context.Context, name string) ([]SnapshotInfo, error) {
	if err := m.store.MustExist(name); err != nil {
		return nil, err
	}
	names, err := m.snapshotNames(name)
	if err != nil {
		return nil, err
	}
	b, _, err := storage.ForContainer(m.store.Root, m.store.ContainerDir(name))
	if err != nil {
		return nil, err
	}
	infos := make([]SnapshotInfo, 0, len(names))
	for _, snap := range names {
		dir := filepath.Join(m.snapshotsDir(name), snap)
		info := SnapshotInfo{Name: snap}
		var meta snapshotMeta
		if data, err := os.ReadFile(filepath.Join(dir, snapshotFile)); err != nil {
			info.Error = err.Error()
		} else if err := json.Unmarshal(data, &meta); err != nil {
			info.Error = fmt.Sprintf("%s: %v", filepath.Join(dir, snapshotFile), err)
		}
		info.Created = meta.Created
		if u, err := b.Usage(ctx, filepath.Join(dir, "rootfs")); err != nil {
			info.Error = err.Error()
		} else {
			info.Bytes = u.Bytes
		}
		infos = append(infos, info)
	}
	sort.SliceStable(infos, func(i, j int) bool { return infos[i].Created.Before(infos[j].Created) })
	return infos, nil
}

// SnapshotRestore brings the container's tree and configuration back to
// snapshot snap. The container keeps its name and id range, and every
// snapshot stays, newer ones included. It must be stopped. A marker
// (restoring) is written first and removed last: an interrupted restore is
// reported by list and refused by start until a restore finishes.
func (m *Manager) SnapshotRestore(ctx context.Context, name, snap string) error {
	unlock, err := m.lockForSnapshot(ctx, name, snap)
	if err != nil {
		return err
	}
	defer unlock()
	if st, err := m.liveState(name); err != nil {
		return err
	} else if st != nil {
		return fmt.Errorf("container %q %w (pid %d); a snapshot restores a stopped container: lodge stop %s, then lodge snapshot restore %s %s",
			name, ErrRunning, st.Init.PID, name, name, snap)
	}
	dir, err := m.snapshotDir(name, snap)
	if err != nil {
		return err
	}
	config, err := os.ReadFile(filepath.Join(dir, "config.toml"))
	if err != nil {
		return fmt.Errorf("snapshot %s of %s: its configuration: %w", snap, name, err)
	}
	b, _, err := storage.ForContainer(m.store.Root, m.store.ContainerDir(name))
	if err != nil {
		return err
	}
	marker := filepath.Join(m.store.ContainerDir(name), restoringFile)
	if err := atomicfile.Write(marker, []byte(snap+"\n"), 0o600); err != nil {
		return err
	}
	if err := b.Restore(ctx, filepath.Join(dir, "rootfs"), m.store.RootfsPath(name), storage.Options{}); err != nil {
		return fmt.Errorf("restore %s from snapshot %s: %w", name, snap, err)
	}
	if err := atomicfile.Write(m.store.ConfigPath(name), config, 0o600); err != nil {
		return fmt.Errorf("restore the configuration of %s from snapshot %s: %w", name, snap, err)
	}
	if err := os.Remove(marker); err != nil {
		return fmt.Errorf("restored %s, but removing %s: %w", name, marker, err)
	}
	return nil
}

// lockForSnapshot checks snap's name and takes the container's lock for a
// restore or a delete of a snapshot, after prepareStorage; an interrupted
// restore does not stop them (a restore finishes it, a delete of another
// snapshot is harmless).
func (m *Manager) lockForSnapshot(ctx context.Context, name, snap string) (func(), error) {
	if err := ValidateSnapshotName(snap); err != nil {
		return nil, invalid(err)
	}
	lock, err := m.store.Lock(ctx, name)
	if err != nil {
		return nil, err
	}
	if err := m.prepareStorage(name); err != nil && !m.restoreInterrupted(name) {
		lock.Unlock()
		return nil, err
	}
	return func() { lock.Unlock() }, nil
}

// restoreInterrupted reports whether an interrupted restore is what
// prepareStorage refused for: a new restore finishes it.
func (m *Manager) restoreInterrupted(name string) bool {
	_, ok := m.restoring(name)
	return ok
}

// SnapshotDelete removes snapshot snap of the container. The snapshot is
// renamed aside first, so an interrupted delete leaves no half snapshot.
func (m *Manager) SnapshotDelete(ctx context.Context, name, snap string) error {
	unlock, err := m.lockForSnapshot(ctx, name, snap)
	if err != nil {
		return err
	}
	defer unlock()
	if snap2, ok := m.restoring(name); ok && snap2 == snap {
		return fmt.Errorf("container %q: snapshot %s is being restored (the restore was interrupted); finish it first: lodge snapshot restore %s %s", name, snap, name, snap)
	}
	dir, err := m.snapshotDir(name, snap)
	if err != nil {
		return err
	}
	b, _, err := storage.ForContainer(m.store.Root, m.store.ContainerDir(name))
	if err != nil {
		return err
	}
	aside := filepath.Join(m.snapshotsDir(name), fmt.Sprintf("%s%s.delete.%d", storage.TempPrefix, snap, os.Getpid()))
	if err := os.Rename(dir, aside); err != nil {
		return fmt.Errorf("delete snapshot %s of %s: %w", snap, name, err)
	}
	if err := b.Delete(ctx, filepath.Join(aside, "rootfs")); err != nil {
		return fmt.Errorf("snapshot %s of %s is deleted, but removing its files failed (the next operation on %s retries): %w", snap, name, name, err)
	}
	return os.RemoveAll(aside)
}

// copyFile copies a small file (a configuration) to a new path.
func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return atomicfile.Write(dst, data, 0o600)
}
