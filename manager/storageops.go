package manager

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"lodge/config"
	"lodge/internal/atomicfile"
	"lodge/internal/cgroup"
	"lodge/internal/rawfile"
	"lodge/internal/store"
	"lodge/rootfs"
	"lodge/storage"
	"lodge/templates"
)

// What the storage operations (copy, snapshots, restore, disk limits) keep
// in a container's directory besides rootfs/, config.toml and storage.json:
//
//	snapshots/SNAP/{rootfs,config.toml,snapshot.json}  one snapshot
//	restoring                                        a restore under way (the snapshot's name)
//	frozen-by                                        the lodge that froze the container ("pid start")
const (
	snapshotsDirName = "snapshots"
	restoringFile    = "restoring"
	frozenByFile     = "frozen-by"
)

func (m *Manager) snapshotsDir(name string) string {
	return filepath.Join(m.store.ContainerDir(name), snapshotsDirName)
}

// editRootfs runs fn on the root filesystem of the container whose directory
// is containerDir, as the container sees it: every write lodge makes inside
// a container's tree on the host goes through here. The container must be
// stopped (a copy being built is): for overlay the view is a second,
// writable mount of the container's upper layer.
func (m *Manager) editRootfs(containerDir string, fn func(root string) error) error {
	view, err := storage.OpenView(m.store.Root, containerDir, true)
	if err != nil {
		return err
	}
	defer view.Close()
	return fn(view.Dir)
}

// personalize gives a copied root filesystem its own identity: the
// container's name as hostname (/etc/hostname, /etc/hosts) and a new
// machine-id, so that two copies never share one (journald, DHCP client ids
// and D-Bus key on it).
func (m *Manager) personalize(containerDir, name string) error {
	return m.editRootfs(containerDir, func(root string) error {
		if err := templates.ConfigureHostname(root, name); err != nil {
			return fmt.Errorf("set hostname of %s: %w", name, err)
		}
		id := make([]byte, 16)
		if _, err := rand.Read(id); err != nil {
			return err
		}
		if err := rootfs.WriteFileInRoot(root, "etc/machine-id", []byte(hex.EncodeToString(id)+"\n"), 0o444); err != nil {
			return fmt.Errorf("new machine-id for %s: %w", name, err)
		}
		return nil
	})
}

// prepareStorage readies a container's storage for an operation that holds
// its lock: it removes what interrupted operations left (temporary trees),
// thaws a container a killed lodge left frozen, and refuses a container
// whose restore was interrupted (its rootfs and config may not match).
func (m *Manager) prepareStorage(name string) error {
	dir := m.store.ContainerDir(name)
	for _, d := range []string{dir, m.snapshotsDir(name)} {
		if err := storage.RemoveStale(d); err != nil {
			return fmt.Errorf("container %s: remove what an interrupted operation left in %s: %w", name, d, err)
		}
	}
	m.thawAbandoned(name)
	if snap, ok := m.restoring(name); ok {
		return fmt.Errorf("container %q: the restore of its snapshot %s was interrupted, so its files and configuration may not match; finish it: lodge snapshot restore %s %s",
			name, snap, name, snap)
	}
	return nil
}

// restoring reports the snapshot an interrupted restore was bringing back.
func (m *Manager) restoring(name string) (string, bool) {
	data, err := rawfile.Read(filepath.Join(m.store.ContainerDir(name), restoringFile))
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(string(data)), true
}

// setDiskLimit applies limits.disk to the root filesystem of the container
// whose directory is dir, through the backend that made it. A backend that
// cannot enforce a limit refuses with the reason (never ignored): the
// caller then changes nothing.
func (m *Manager) setDiskLimit(ctx context.Context, dir string, limit config.Size) error {
	b, _, err := storage.ForContainer(m.store.Root, dir)
	if err != nil {
		return err
	}
	if err := b.SetQuota(ctx, filepath.Join(dir, "rootfs"), int64(limit)); err != nil {
		if errors.Is(err, storage.ErrQuotaUnsupported) {
			return invalid(fmt.Errorf("limits.disk = %s refused: %w", limit, err))
		}
		return fmt.Errorf("limits.disk = %s: %w", limit, err)
	}
	return nil
}

// setRunningDiskLimit is setDiskLimit for a running container: a backend
// that can change its limit only in some ways while it runs (overlay: only
// grow) refuses the others, and the user stops it first.
func (m *Manager) setRunningDiskLimit(ctx context.Context, name string, limit config.Size) error {
	dir := m.store.ContainerDir(name)
	b, _, err := storage.ForContainer(m.store.Root, dir)
	if err != nil {
		return err
	}
	rq, ok := b.(storage.RunningQuotaSetter)
	if !ok {
		return m.setDiskLimit(ctx, dir, limit)
	}
	if err := rq.SetQuotaRunning(ctx, filepath.Join(dir, "rootfs"), int64(limit)); err != nil {
		if errors.Is(err, storage.ErrStopFirst) {
			return kindError{fmt.Errorf("limits.disk = %s refused for container %s: %w (lodge stop %s)", limit, name, err, name), ErrRunning}
		}
		if errors.Is(err, storage.ErrQuotaUnsupported) {
			return invalid(fmt.Errorf("limits.disk = %s refused: %w", limit, err))
		}
		return fmt.Errorf("limits.disk = %s: %w", limit, err)
	}
	return nil
}

// StartStorage is what start does to a container's storage before booting
// it: the checks of prepareStorage, and limits.disk applied again (a limit
// lives in the filesystem, which a restore or a move of the root may reset).
func (m *Manager) startStorage(ctx context.Context, name string, cfg *config.Container) error {
	if err := m.prepareStorage(name); err != nil {
		return err
	}
	if cfg.Limits.Disk == 0 {
		return nil
	}
	return m.setDiskLimit(ctx, m.store.ContainerDir(name), cfg.Limits.Disk)
}

// freezeTimeout bounds the wait for every task of a container to freeze: a
// task stuck in the kernel keeps a freezer FREEZING for ever, and the
// others must not stay stopped meanwhile (the freezer thaws them again).
const freezeTimeout = 10 * time.Second

// Frozen says how long a running container was frozen for a consistent
// copy or snapshot.
type Frozen struct {
	Frozen bool          // the container ran and was frozen for the cut
	For    time.Duration // how long, from the freeze request to the thaw
}

// frozenCall runs fn, the backend call that cuts a running container's
// tree, with the container frozen through its cgroup freezer: the only time
// it is frozen. It always thaws, whatever fn returns and however ctx ends.
// A container the user froze stays frozen and is not thawed. A marker in
// the container's directory names this lodge while it holds the freeze, so
// that a lodge killed meanwhile does not leave the container frozen forever
// (thawAbandoned).
func (m *Manager) frozenCall(ctx context.Context, name string, st *store.State, fn func() error) (Frozen, error) {
	g := cgroup.Open(st.Cgroups)
	if already, err := g.Frozen(); err != nil {
		return Frozen{}, fmt.Errorf("container %s: %w", name, err)
	} else if already {
		return Frozen{Frozen: true}, fn()
	}
	marker := filepath.Join(m.store.ContainerDir(name), frozenByFile)
	if err := writeOwnerFile(marker); err != nil {
		return Frozen{}, err
	}
	defer os.Remove(marker)
	began := time.Now()
	fctx, cancel := context.WithTimeout(ctx, freezeTimeout)
	defer cancel()
	if err := g.Freeze(fctx); err != nil {
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			return Frozen{}, fmt.Errorf("container %s did not freeze within %v for a consistent copy (a process may be stuck in the kernel, in D state); it runs on, thawed; try again later: %w", name, freezeTimeout, err)
		}
		return Frozen{}, fmt.Errorf("freeze container %s for a consistent copy: %w", name, err)
	}
	err := fn()
	terr := g.Thaw()
	took := time.Since(began)
	if terr != nil {
		return Frozen{Frozen: true, For: took}, errors.Join(err, fmt.Errorf("container %s stays frozen: %w; thaw it: echo THAWED > its freezer.state", name, terr))
	}
	return Frozen{Frozen: true, For: took}, err
}

// thawAbandoned thaws a container that a lodge froze and was killed before
// it thawed it again. The caller holds the container's lock, so no other
// lodge freezes it meanwhile.
func (m *Manager) thawAbandoned(name string) {
	marker := filepath.Join(m.store.ContainerDir(name), frozenByFile)
	owner, ok := readOwnerFile(marker)
	if !ok || owner.Alive() {
		return
	}
	if st, err := m.liveState(name); err == nil && st != nil {
		cgroup.Open(st.Cgroups).Thaw()
	}
	os.Remove(marker)
}

func writeOwnerFile(path string) error {
	p, err := store.ProcessOf(os.Getpid())
	if err != nil {
		return err
	}
	return atomicfile.WriteRuntime(path, []byte(fmt.Sprintf("%d %d\n", p.PID, p.Start)), 0o600)
}

func readOwnerFile(path string) (store.Process, bool) {
	data, err := rawfile.Read(path)
	if err != nil {
		return store.Process{}, false
	}
	p, _ := parseProcess(strings.Fields(string(data)))
	return p, true // damaged: Process{}, its writer is gone
}

// StorageInfo is what `lodge info` shows of a container's storage.
type StorageInfo struct {
	Backend   string         `json:"backend" yaml:"backend"`
	Source    string         `json:"source,omitempty" yaml:"source,omitempty"` // what a clone shares data with
	DiskBytes int64          `json:"disk_bytes" yaml:"disk_bytes"`             // as the backend counts it
	Snapshots []SnapshotInfo `json:"snapshots" yaml:"snapshots"`
	Error     string         `json:"error,omitempty" yaml:"error,omitempty"`
}

func (m *Manager) storageInfo(ctx context.Context, name string) *StorageInfo {
	dir := m.store.ContainerDir(name)
	b, rec, err := storage.ForContainer(m.store.Root, dir)
	if err != nil {
		return &StorageInfo{Error: err.Error()}
	}
	si := &StorageInfo{Backend: b.Name(), Source: rec.Source, Snapshots: []SnapshotInfo{}}
	var problems []string
	if u, err := b.Usage(ctx, m.store.RootfsPath(name)); err != nil {
		problems = append(problems, err.Error())
	} else {
		si.DiskBytes = u.Bytes
	}
	if snaps, err := m.Snapshots(ctx, name); err != nil {
		problems = append(problems, err.Error())
	} else {
		si.Snapshots = snaps
	}
	si.Error = strings.Join(problems, "; ")
	return si
}

// storageProblems says what `lodge list` must not hide: a restore that was
// interrupted (its files and configuration may not match) and a freeze a
// killed lodge left (thawed by the next copy, snapshot or config change).
func (m *Manager) storageProblems(name string) []string {
	if m.store.Busy(name) {
		return nil // an operation runs on it right now: its markers are its own
	}
	var problems []string
	if snap, ok := m.restoring(name); ok {
		problems = append(problems, fmt.Sprintf("the restore of its snapshot %s was interrupted, so its files and configuration may not match; finish it: lodge snapshot restore %s %s", snap, name, snap))
	}
	if owner, ok := readOwnerFile(filepath.Join(m.store.ContainerDir(name), frozenByFile)); ok && !owner.Alive() && !m.healFreeze(name) {
		problems = append(problems, fmt.Sprintf("a lodge copy or snapshot that froze it was killed; the next lodge snapshot create %s thaws it", name))
	}
	return problems
}

// healFreeze thaws a container a killed lodge left frozen, if its lock is
// free right now (no operation that could freeze it runs). Reading
// commands do it so that the freeze never outlives the next look at it.
func (m *Manager) healFreeze(name string) bool {
	done, cancel := context.WithCancel(context.Background())
	cancel() // one try, no waiting
	lock, err := m.store.Lock(done, name)
	if err != nil {
		return false
	}
	defer lock.Unlock()
	m.thawAbandoned(name)
	return true
}
