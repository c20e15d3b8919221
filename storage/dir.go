package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// DirName is the dir backend's name.
const DirName = "dir"

// Dir is the dir backend: a root filesystem is a plain directory tree.
// Creates, clones and snapshots are copies, whose data is shared with
// reflinks where the filesystem can (btrfs, xfs with reflink=1) and copied
// in parallel where it cannot (ext4). Snapshots are full copies, restored
// by copying them to a temporary tree and swapping it in.
type Dir struct{}

var _ Backend = Dir{}

// Name implements Backend.
func (Dir) Name() string { return DirName }

// Create implements Backend: a copy of the image.
func (Dir) Create(ctx context.Context, image, dst string, opts Options) error {
	return copyTree(ctx, image, dst, opts, false)
}

// Clone implements Backend. A copy-on-write clone is a copy in which every
// file is a reflink: O(files), not O(1), but sharing every data block; on a
// filesystem without reflinks it is refused with ErrNoCopyOnWrite.
func (Dir) Clone(ctx context.Context, src, dst string, opts Options) error {
	return copyTree(ctx, src, dst, opts, opts.CopyOnWrite)
}

// Snapshot implements Backend: a copy, reflinked where the filesystem can.
func (Dir) Snapshot(ctx context.Context, src, snap string, opts Options) error {
	return copyTree(ctx, src, snap, opts, false)
}

// Restore implements Backend: the snapshot is copied beside dst, then
// exchanged with dst in one renameat2, then the old tree is removed. Killed
// before the exchange, dst is the old tree; after it, the restored one.
func (Dir) Restore(ctx context.Context, snap, dst string, opts Options) error {
	tmp := tempPath(dst, "restore")
	if err := copyInto(ctx, snap, tmp, opts, false); err != nil {
		return fmt.Errorf("restore %s from %s: %w", dst, snap, err)
	}
	err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dst, unix.RENAME_EXCHANGE)
	if errors.Is(err, unix.ENOENT) { // no tree at dst: nothing to exchange with
		err = unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dst, unix.RENAME_NOREPLACE)
	}
	if err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("restore %s from %s: swap in the restored tree: %w", dst, snap, err)
	}
	// tmp is now the old tree, still under a temporary name.
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("restored %s, but removing the old tree %s: %w", dst, tmp, err)
	}
	return nil
}

// Delete implements Backend: the tree is renamed aside first, so that an
// interrupted delete leaves a temporary name, never a half tree at path.
func (Dir) Delete(ctx context.Context, path string) error {
	tmp := tempPath(path, "delete")
	if err := os.Rename(path, tmp); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("delete %s: %w", path, err)
	}
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("delete %s (moved aside to %s): %w", path, tmp, err)
	}
	return nil
}

// Usage implements Backend: the blocks of every inode under path, hard
// links counted once.
func (Dir) Usage(ctx context.Context, path string) (Usage, error) {
	type inode struct{ dev, ino uint64 }
	seen := map[inode]bool{}
	var u Usage
	err := filepath.WalkDir(path, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return &os.PathError{Op: "lstat", Path: p, Err: err}
		}
		if key := (inode{st.Dev, st.Ino}); !seen[key] {
			seen[key] = true
			u.Bytes += st.Blocks * 512
			u.Inodes++
		}
		return nil
	})
	if err != nil {
		return Usage{}, fmt.Errorf("disk usage of %s: %w", path, err)
	}
	return u, nil
}

// SetQuota implements Backend. The dir backend cannot enforce a limit:
// that needs project quotas (ext4 and xfs), which lodge does not set up;
// the overlay and btrfs backends do.
func (Dir) SetQuota(ctx context.Context, path string, bytes int64) error {
	if bytes == 0 {
		return nil // no limit asked, none set
	}
	return &QuotaError{Backend: DirName, Path: path, Reason: fmt.Sprintf(
		"it lives on %s, and the dir backend does not set up project quotas yet; "+
			"make the container with a backend that enforces limits (storage.backend = \"overlay\", the default on ext4, "+
			"or \"btrfs\" with the lodge root on btrfs, in the host config), or leave limits.disk unset", fsName(path))}
}

// CheckQuota implements QuotaChecker: never.
func (d Dir) CheckQuota(root string) error {
	return d.SetQuota(context.Background(), root, 1)
}

// fsName names the filesystem path is on, for messages.
func fsName(path string) string {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return "an unknown filesystem"
	}
	switch st.Type {
	case unix.EXT4_SUPER_MAGIC:
		return "ext4"
	case unix.XFS_SUPER_MAGIC:
		return "xfs"
	case unix.BTRFS_SUPER_MAGIC:
		return "btrfs"
	case unix.TMPFS_MAGIC:
		return "tmpfs"
	case unix.OVERLAYFS_SUPER_MAGIC:
		return "overlayfs"
	}
	return fmt.Sprintf("a filesystem of type %#x", st.Type)
}
