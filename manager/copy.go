package manager

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"lodge/config"
	"lodge/internal/events"
	"lodge/internal/revert"
	"lodge/storage"
	"lodge/templates"
)

// CopyOptions says how to copy a container.
type CopyOptions struct {
	// Snapshot asks for a copy-on-write clone that shares unchanged data
	// with its source, where the backend can (else the copy fails with
	// storage.ErrNoCopyOnWrite and the way out in the message).
	Snapshot bool
	Report   templates.Reporter
}

// CopyResult says what a copy did.
type CopyResult struct {
	Frozen  Frozen // the source ran and was frozen for the cut
	Backend string // the storage backend that made the copy
}

// Copy makes container dst from src, a container (NAME, running or not) or
// one of its snapshots (NAME/SNAP). The copy is a new container: its own
// name, hostname, machine-id and id range; the source's configuration. It
// is built out of sight (ROOT/tmp, as create builds) and appears under its
// name only once complete; an error, Ctrl-C or kill -9 leaves nothing a
// later command would take for a container.
func (m *Manager) Copy(ctx context.Context, src, dst string, opts CopyOptions) (CopyResult, error) {
	if opts.Report == nil {
		opts.Report = templates.Silent{}
	}
	srcName, snap, err := splitSource(src)
	if err != nil {
		return CopyResult{}, err
	}
	if err := config.ValidateName(dst); err != nil {
		return CopyResult{}, invalid(err)
	}
	if err := m.nameFree(dst); err != nil {
		return CopyResult{}, err
	}
	lock, err := m.store.Lock(ctx, srcName)
	if err != nil {
		return CopyResult{}, err
	}
	defer lock.Unlock()
	if err := m.prepareStorage(srcName); err != nil {
		return CopyResult{}, err
	}
	from, err := m.copySource(srcName, snap)
	if err != nil {
		return CopyResult{}, err
	}
	if err := m.store.Prepare(); err != nil {
		return CopyResult{}, err
	}
	m.sweepTmp()
	res, err := m.buildCopy(ctx, src, dst, from, opts)
	if err == nil {
		m.emit(dst, events.Event{Type: events.Copied, Peer: src})
	}
	return res, err
}

// splitSource parses NAME or NAME/SNAP.
func splitSource(src string) (name, snap string, err error) {
	name, snap, hasSnap := strings.Cut(src, "/")
	if err := config.ValidateName(name); err != nil {
		return "", "", invalid(fmt.Errorf("copy source %q: %w", src, err))
	}
	if hasSnap {
		if err := ValidateSnapshotName(snap); err != nil {
			return "", "", invalid(fmt.Errorf("copy source %q: %w", src, err))
		}
	}
	return name, snap, nil
}

// copyFrom is where a copy's tree and configuration come from.
type copyFrom struct {
	dir     string // the container's directory (its storage record)
	rootfs  string
	config  string
	running string // the running container to freeze, or ""
}

func (m *Manager) copySource(name, snap string) (copyFrom, error) {
	dir := m.store.ContainerDir(name)
	if snap != "" {
		sdir, err := m.snapshotDir(name, snap)
		if err != nil {
			return copyFrom{}, err
		}
		return copyFrom{dir: dir, rootfs: filepath.Join(sdir, "rootfs"), config: filepath.Join(sdir, "config.toml")}, nil
	}
	from := copyFrom{dir: dir, rootfs: m.store.RootfsPath(name), config: m.store.ConfigPath(name)}
	st, err := m.liveState(name)
	if err != nil {
		return copyFrom{}, err
	}
	if st != nil {
		from.running = name
	}
	return from, nil
}

// buildCopy makes the copy in a create's staging directory and moves it
// into place.
func (m *Manager) buildCopy(ctx context.Context, src, dst string, from copyFrom, opts CopyOptions) (CopyResult, error) {
	res, err := m.reserve(dst)
	if err != nil {
		return CopyResult{}, err
	}
	defer res.release()
	r := revert.New()
	defer r.Fail()
	staging := res.dir
	r.Add(func() { m.removeStaging(staging) })
	if err := m.nameFree(dst); err != nil {
		return CopyResult{}, err
	}
	cfg, err := config.Load(from.config)
	if err != nil {
		return CopyResult{}, invalid(fmt.Errorf("copy %s: its configuration: %w", src, err))
	}
	cfg.Source.Created = time.Now().UTC().Truncate(time.Second)
	// A copy on the same network needs its own MAC and addresses: its NICs
	// get generated MACs and DHCP (static addresses are not copied).
	for i := range cfg.Networks {
		cfg.Networks[i].HWAddr, cfg.Networks[i].IPv4, cfg.Networks[i].IPv6 = "", "", ""
	}
	cfg.Proxies = nil // a host port is forwarded to one container only

	unlockNetworks, err := m.prepareNICs(ctx, dst, cfg)
	if err != nil {
		return CopyResult{}, err
	}
	unlockNetworks()
	if err := os.Mkdir(filepath.Join(staging, "log"), 0o700); err != nil {
		return CopyResult{}, err
	}
	result, err := m.copyRootfs(ctx, src, staging, from, opts)
	if err != nil {
		return result, err
	}
	if err := m.personalize(staging, dst); err != nil {
		return result, err
	}
	if err := cfg.Save(filepath.Join(staging, "config.toml")); err != nil {
		return result, err
	}
	if cfg.Limits.Disk > 0 {
		if err := m.setDiskLimit(ctx, staging, cfg.Limits.Disk); err != nil {
			return result, fmt.Errorf("copy %s to %s: %w; the copy keeps the source's limits.disk: unset it on the source first (lodge config set %s limits.disk=0)", src, dst, err, strings.SplitN(src, "/", 2)[0])
		}
	}
	if err := m.allocateRange(dst, r); err != nil {
		return result, err
	}
	if err := ctx.Err(); err != nil {
		return result, fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	if err := os.Remove(filepath.Join(staging, ownerFile)); err != nil {
		return result, err
	}
	if err := unix.Renameat2(unix.AT_FDCWD, staging, unix.AT_FDCWD, m.store.ContainerDir(dst), unix.RENAME_NOREPLACE); err != nil {
		if errors.Is(err, unix.EEXIST) || errors.Is(err, unix.ENOTEMPTY) {
			return result, m.existsError(dst)
		}
		return result, fmt.Errorf("move the copy into place: %w", err)
	}
	r.Success()
	return result, nil
}

// copyRootfs copies the source's tree into staging/rootfs through the
// source's backend, freezing a running source for the backend call only,
// and records the backend in the copy's storage.json.
func (m *Manager) copyRootfs(ctx context.Context, src, staging string, from copyFrom, opts CopyOptions) (CopyResult, error) {
	b, rec, err := storage.ForContainer(m.store.Root, from.dir)
	if err != nil {
		return CopyResult{}, err
	}
	result := CopyResult{Backend: b.Name()}
	sopts := storage.Options{CopyOnWrite: opts.Snapshot, Live: from.running != ""}
	if !opts.Snapshot {
		sopts.Progress = copyProgress(opts.Report)
	}
	how := "copying"
	if opts.Snapshot {
		how = "cloning (copy-on-write)"
	}
	opts.Report.Step("%s the root filesystem of %s (%s storage)", how, src, b.Name())
	dstRootfs := filepath.Join(staging, "rootfs")
	clone := func() error { return b.Clone(ctx, from.rootfs, dstRootfs, sopts) }
	if from.running != "" {
		st, err := m.liveState(from.running)
		if err != nil {
			return result, err
		}
		if st != nil {
			result.Frozen, err = m.frozenCall(ctx, from.running, st, clone)
		} else {
			sopts.Live = false // it stopped meanwhile: a plain copy
			err = clone()
		}
		if err != nil {
			return result, copyError(src, err)
		}
	} else if err := clone(); err != nil {
		return result, copyError(src, err)
	}
	newRec := storage.Record{Backend: b.Name(), Image: rec.Image}
	if opts.Snapshot {
		newRec.Source = src // shares data with it through the backend
	}
	if err := storage.WriteRecord(staging, newRec); err != nil {
		return result, err
	}
	return result, nil
}

// copyError says what failed; a refused copy-on-write clone gets the way
// out unless the backend's message has it already.
func copyError(src string, err error) error {
	if errors.Is(err, storage.ErrNoCopyOnWrite) && !strings.Contains(err.Error(), "full copy") {
		return fmt.Errorf("copy %s: %w; make a full copy instead (lodge copy without --snapshot)", src, err)
	}
	return fmt.Errorf("copy %s: %w", src, err)
}

// removeStaging removes a failed copy's staging directory, its tree through
// its backend first (a btrfs subvolume is not removed by a plain remove).
func (m *Manager) removeStaging(staging string) {
	if b, _, err := storage.ForContainer(m.store.Root, staging); err == nil {
		b.Delete(context.Background(), filepath.Join(staging, "rootfs"))
	}
	os.RemoveAll(staging)
}
