package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// BtrfsName is the btrfs backend's name.
const BtrfsName = btrfsName

// Btrfs is the btrfs backend, for lodge roots on btrfs: every tree
// (ROOT/containers/NAME/rootfs, ROOT/containers/NAME/snapshots/SNAP/rootfs)
// is a subvolume, and creates, clones, snapshots and restores are
// snapshots, O(1) whatever the tree's size.
//
// Images live in a shared cache that may be on another filesystem, so each
// image is copied once (reflinked where the cache is on the same btrfs)
// into a read-only base subvolume, ROOT/storage/btrfs/images/KEY; a
// container's tree is a writable snapshot of its image's base. Nothing
// depends on a base once the snapshot is made (btrfs counts references to
// shared blocks): a base can go without touching the containers made from
// it, and so can the source of any clone or snapshot.
//
// Disk limits are qgroup limits on referenced bytes (see SetQuota).
type Btrfs struct {
	root string // the lodge root
}

var _ Backend = (*Btrfs)(nil)

// newBtrfs refuses a lodge root that is not on btrfs (one that does not
// exist yet is checked by the first operation).
func newBtrfs(root string) (Backend, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(root, &st); err == nil && st.Type != unix.BTRFS_SUPER_MAGIC {
		return nil, fmt.Errorf("the btrfs storage backend needs the lodge root on btrfs, and %s is on %s; "+
			"set storage.backend to auto or dir, or put the root on a btrfs filesystem", root, fsName(root))
	}
	return &Btrfs{root: root}, nil
}

// btrfsStep, set by tests only, is called between the steps of an
// operation, so that a test can kill the process at each of them.
var btrfsStep func(step string)

func stepDone(name string) {
	if btrfsStep != nil {
		btrfsStep(name)
	}
}

// Name implements Backend.
func (*Btrfs) Name() string { return BtrfsName }

// imagesDir holds the base subvolumes of images.
func (b *Btrfs) imagesDir() string { return filepath.Join(b.root, "storage", BtrfsName, "images") }

// Create implements Backend: a writable snapshot of the image's base
// subvolume, made first if this is the image's first container. The
// snapshot is made at dst directly: the kernel makes it in one transaction,
// so there is never a half one to see, even after a crash.
func (b *Btrfs) Create(ctx context.Context, image, dst string, opts Options) error {
	base, err := b.base(ctx, image, opts)
	if err != nil {
		return fmt.Errorf("create %s from %s: %w", dst, image, err)
	}
	if err := snapshotSubvolume(base, dst, false); err != nil {
		return fmt.Errorf("create %s: %w", dst, err)
	}
	return nil
}

// Clone implements Backend. Both kinds of copy are writable snapshots: a
// btrfs snapshot is already independent of its source (either can be
// written, limited or deleted without the other noticing; btrfs counts
// references to the blocks they share), so a full copy that duplicated
// every block would cost time and space and buy nothing. The one difference
// a full copy would make, blocks not shared on disk, matters only against
// disk corruption, which is what the filesystem's own redundancy is for.
// A clone has no disk limit of its own: the caller sets the new tree's.
func (b *Btrfs) Clone(ctx context.Context, src, dst string, opts Options) error {
	if err := snapshotSubvolume(src, dst, false); err != nil {
		return fmt.Errorf("clone %s: %w", src, err)
	}
	return nil
}

// Snapshot implements Backend: a read-only snapshot, which nothing (not
// even root, without first clearing the flag) can change.
func (b *Btrfs) Snapshot(ctx context.Context, src, snap string, opts Options) error {
	if err := snapshotSubvolume(src, snap, true); err != nil {
		return fmt.Errorf("snapshot %s: %w", src, err)
	}
	return nil
}

// Restore implements Backend: a writable snapshot of snap is made beside
// dst under a temporary name, given dst's disk limit, exchanged with dst in
// one renameat2, and the old tree (now under the temporary name) deleted.
// Killed before the exchange, dst is the old tree; after it, the restored
// one; either way only a TempPrefix subvolume is left over.
func (b *Btrfs) Restore(ctx context.Context, snap, dst string, opts Options) error {
	tmp := tempPath(dst, "restore")
	if err := snapshotSubvolume(snap, tmp, false); err != nil {
		return fmt.Errorf("restore %s: %w", dst, err)
	}
	stepDone("restore-snapshotted")
	if err := carryLimit(dst, tmp); err != nil {
		removeTree(tmp)
		return fmt.Errorf("restore %s from %s: %w", dst, snap, err)
	}
	err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dst, unix.RENAME_EXCHANGE)
	if errors.Is(err, unix.ENOENT) { // no tree at dst: nothing to exchange with
		err = unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dst, unix.RENAME_NOREPLACE)
	}
	if err != nil {
		removeTree(tmp)
		return fmt.Errorf("restore %s from %s: swap in the restored tree: %w", dst, snap, err)
	}
	stepDone("restore-exchanged")
	if err := removeTree(tmp); err != nil {
		return fmt.Errorf("restored %s, but deleting the old tree %s: %w", dst, tmp, err)
	}
	return nil
}

// carryLimit gives the subvolume at to the qgroup limit of the one at from, if any.
func carryLimit(from, to string) error {
	if !isSubvolume(from) {
		return nil
	}
	q, ok, err := readQgroup(from)
	if err != nil || !ok || q.maxReferenced == 0 {
		return err
	}
	return limitQgroup(to, uint64(q.maxReferenced))
}

// Delete implements Backend: the subvolume is renamed aside, then deleted
// with every subvolume nested in it (systemd makes some, /var/lib/machines
// say, on a btrfs root). An interrupted delete leaves only a TempPrefix
// name, which RemoveStale deletes the same way.
func (b *Btrfs) Delete(ctx context.Context, path string) error {
	tmp := tempPath(path, "delete")
	if err := os.Rename(path, tmp); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("delete %s: %w", path, err)
	}
	stepDone("delete-renamed")
	if err := removeTree(tmp); err != nil {
		return fmt.Errorf("delete %s (moved aside to %s): %w", path, tmp, err)
	}
	return nil
}

// Usage implements Backend. With quotas on, it is the qgroup's referenced
// bytes (every block the tree refers to, shared or not: the number its
// limit is checked against), read from sysfs after a sync, since btrfs
// counts at transaction commit; Inodes is then 0, as btrfs does not count
// a subvolume's inodes. With quotas off (or their counts known wrong until
// a rescan), it is a walk, as for dir.
func (b *Btrfs) Usage(ctx context.Context, path string) (Usage, error) {
	if isSubvolume(path) {
		if err := syncFS(path); err != nil {
			return Usage{}, fmt.Errorf("disk usage of %s: %w", path, err)
		}
		q, ok, err := readQgroup(path)
		if err != nil {
			return Usage{}, fmt.Errorf("disk usage of %s: %w", path, err)
		}
		if ok && q.consistent {
			return Usage{Bytes: q.referenced}, nil
		}
	}
	return Dir{}.Usage(ctx, path)
}

// SetQuota implements Backend: a qgroup limit on the bytes the subvolume
// refers to, blocks shared with its image or with snapshots included, so a
// container can never hold more than the limit, however it was made. Quotas
// are turned on for the whole filesystem the first time a limit is set
// (qgroup accounting makes snapshot deletion slower, so lodge leaves them
// off until someone asks for a limit). Writes past the limit fail with
// EDQUOT ("Disk quota exceeded").
func (b *Btrfs) SetQuota(ctx context.Context, path string, bytes int64) error {
	quotaErr := func(format string, args ...any) error {
		return &QuotaError{Backend: BtrfsName, Path: path, Reason: fmt.Sprintf(format, args...)}
	}
	switch {
	case bytes < 0:
		return fmt.Errorf("disk limit on %s: %d bytes is not a limit", path, bytes)
	case !isSubvolume(path):
		return quotaErr("it is not a btrfs subvolume (was it made by another backend?)")
	case bytes == 0 && !quotaEnabled(path):
		return nil // no limit asked, and none can be set
	case bytes == 0:
		if err := limitQgroup(path, btrfsQgroupLimitClear); err != nil {
			return fmt.Errorf("remove the disk limit on %s: %w", path, err)
		}
		return nil
	}
	if !quotaEnabled(path) {
		if err := enableQuota(path); err != nil {
			return quotaErr("btrfs quotas are off on its filesystem and turning them on failed: %v; "+
				"try `btrfs quota enable %s` by hand to see why, or leave limits.disk unset", err, path)
		}
	}
	if err := limitQgroup(path, uint64(bytes)); err != nil {
		return quotaErr("%v", err)
	}
	return nil
}

// base returns the read-only base subvolume of image, making it if needed:
// under a lock (concurrent creates of a new image copy it once), built
// under a temporary name and renamed into place when complete and durable,
// so an interrupted build leaves only a TempPrefix subvolume, which the
// next build removes.
func (b *Btrfs) base(ctx context.Context, image string, opts Options) (string, error) {
	dir := b.imagesDir()
	// 0700: an image's files have host ids, setuid-root ones included.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("make %s: %w", dir, err)
	}
	key, err := imageKey(image)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, key)
	if isSubvolume(path) {
		return path, nil
	}
	unlock, err := lockFile(filepath.Join(dir, "."+key+".lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if isSubvolume(path) { // made while we waited
		return path, nil
	}
	removeStaleOfDead(dir)
	tmp := tempPath(path, "base")
	if err := buildBase(ctx, image, tmp, opts); err != nil {
		removeTree(tmp)
		return "", fmt.Errorf("base subvolume of the image: %w", err)
	}
	stepDone("base-built")
	if err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, path, unix.RENAME_NOREPLACE); err != nil {
		removeTree(tmp)
		return "", fmt.Errorf("move the base subvolume of the image into place at %s: %w", path, err)
	}
	stepDone("base-renamed")
	return path, nil
}

// buildBase copies image into a new subvolume at tmp, syncs it and makes
// it read-only.
func buildBase(ctx context.Context, image, tmp string, opts Options) error {
	if err := createSubvolume(tmp); err != nil {
		return err
	}
	// The copier's own run makes the top directory; here it is the
	// subvolume, so the steps are run by hand, skipping it.
	c := &copier{src: image, dst: tmp, opts: opts}
	entries, err := c.walk(ctx)
	if err != nil {
		return err
	}
	c.done(0, false) // the top: made by createSubvolume
	steps := []func() error{
		func() error { return c.makeDirs(entries[1:]) },
		func() error { return c.copyEntries(ctx, entries) },
		func() error { return c.linkHardLinks(ctx, entries) },
		func() error { return c.finishDirs(entries) },
		func() error { return syncFS(tmp) },
		func() error { return setReadOnly(tmp, true) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return fmt.Errorf("copy %s: %w", image, err)
		}
	}
	return nil
}

// imageKey names an image's base subvolume: the image directory's name for
// people, and a hash of its path and identity (device, inode, change time
// of the root filesystem directory), so that an image rebuilt under the
// same name gets a new base rather than the old one's files. The image's
// description beside it (templates.Images keeps DIR/ID/image.json) goes
// into the hash too: it is rewritten whenever lodge changes files inside
// the image (a newer sanitizer revision), which the directory's change
// time does not show, and a base must never keep the files it fixed.
func imageKey(image string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(image, &st); err != nil {
		return "", &os.PathError{Op: "stat image", Path: image, Err: err}
	}
	abs, err := filepath.Abs(image)
	if err != nil {
		return "", err
	}
	meta, err := os.ReadFile(filepath.Join(filepath.Dir(abs), "image.json"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read the description of image %s: %w", image, err)
	}
	h := sha256.Sum256(fmt.Appendf(nil, "%s\x00%d\x00%d\x00%d.%d\x00%s", abs, st.Dev, st.Ino, st.Ctim.Sec, st.Ctim.Nsec, meta))
	label := filepath.Base(abs)
	if label == "rootfs" { // templates.Images: DIR/ID/rootfs
		label = filepath.Base(filepath.Dir(abs))
	}
	if len(label) > 64 || strings.HasPrefix(label, ".") {
		label = "image"
	}
	return label + "-" + hex.EncodeToString(h[:8]), nil
}

// lockFile takes an exclusive flock on path (made if missing); the kernel
// drops it if the process dies.
func lockFile(path string) (func(), error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, &os.PathError{Op: "open lock", Path: path, Err: err}
	}
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "lock", Path: path, Err: err}
	}
	return func() { unix.Close(fd) }, nil
}

// removeStaleOfDead deletes the TempPrefix entries in dir whose maker (the
// process id in the name, see tempPath) is gone. Best effort: what stays is
// tried again next time.
func removeStaleOfDead(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), TempPrefix) {
			continue
		}
		parts := strings.Split(e.Name(), ".")
		if len(parts) < 2 {
			continue
		}
		pid, err := strconv.Atoi(parts[len(parts)-2])
		if err != nil || unix.Kill(pid, 0) == unix.ESRCH {
			removeTree(filepath.Join(dir, e.Name()))
		}
	}
}

// removeTree deletes path whatever it is: a subvolume (with the ones
// nested in it), a directory holding subvolumes (a read-only one cannot be
// emptied file by file), or any other tree. A missing path is not an error.
func removeTree(path string) error {
	if isSubvolume(path) {
		return deleteSubvolumeTree(path)
	}
	err := os.RemoveAll(path)
	if err == nil || !onBtrfs(path) {
		return err
	}
	if err := deleteNested(path); err != nil {
		return err
	}
	return os.RemoveAll(path)
}

// deleteSubvolumeTree deletes the subvolume at path; when subvolumes are
// nested in it (ENOTEMPTY), it deletes those first, deepest first.
func deleteSubvolumeTree(path string) error {
	err := destroySubvolume(path)
	if errors.Is(err, unix.ENOTEMPTY) {
		if err := deleteNested(path); err != nil {
			return err
		}
		err = destroySubvolume(path)
	}
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// deleteNested deletes every subvolume below top (not top itself). The walk
// is O(files), but only runs when a delete found nested subvolumes.
func deleteNested(top string) error {
	return filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == top || !d.IsDir() || !isSubvolume(p) {
			return nil
		}
		if err := deleteSubvolumeTree(p); err != nil {
			return err
		}
		return filepath.SkipDir
	})
}

// btrfsSupported says whether the btrfs backend can run on the btrfs
// filesystem holding root: the kernel answers its ioctls there, and this
// process may delete subvolumes and set qgroup limits (CAP_SYS_ADMIN).
func btrfsSupported(root string) error {
	if _, err := fsUUID(root); err != nil {
		return fmt.Errorf("the kernel does not answer btrfs ioctls on %s: %w", root, err)
	}
	var hdr = unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("read this process's capabilities: %w", err)
	}
	if data[unix.CAP_SYS_ADMIN/32].Effective&(1<<(unix.CAP_SYS_ADMIN%32)) == 0 {
		return errors.New("deleting subvolumes needs CAP_SYS_ADMIN, which lodge does not have")
	}
	return nil
}
