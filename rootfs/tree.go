package rootfs

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// ErrCannotIdmap is returned by OpenTree when the filesystem under a root
// filesystem does not support idmapped mounts.
var ErrCannotIdmap = errors.New("filesystem cannot be idmapped")

// OpenTree returns a detached mount of dir (and the mounts below it), ready to be
// attached in the container with move_mount. When userns is set, the mount is
// idmapped through that user namespace, so files owned by id N on disk appear
// owned by N inside the container. It must run as host root.
func OpenTree(dir string, userns *os.File) (*os.File, error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, dir,
		unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
	if err != nil {
		return nil, fmt.Errorf("clone mount of %s: %w", dir, err)
	}
	tree := os.NewFile(uintptr(fd), dir)
	// nodev: a device node in the root filesystem (an imported image may hold
	// any) must not open a host device; the container's /dev is a tmpfs with
	// the few nodes lodge binds there itself.
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_NODEV}
	if userns != nil {
		attr.Attr_set |= unix.MOUNT_ATTR_IDMAP
		attr.Userns_fd = uint64(userns.Fd())
	}
	err = unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr)
	if err != nil {
		tree.Close()
		if userns == nil {
			return nil, fmt.Errorf("set nodev on the mount of %s: %w", dir, err)
		}
		return nil, idmapError(dir, err)
	}
	return tree, nil
}

// idmapError says which filesystem refused and why, so that the fallback (or the
// failure, when rootfs.shift = "idmap") is not a mystery.
func idmapError(dir string, err error) error {
	var st unix.Statfs_t
	fsName := "unknown filesystem"
	if unix.Statfs(dir, &st) == nil {
		fsName = FilesystemName(st.Type)
	}
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOTSUP) {
		return fmt.Errorf("%s is on %s: %w (%v)", dir, fsName, ErrCannotIdmap, err)
	}
	return fmt.Errorf("idmap mount of %s on %s: %w", dir, fsName, err)
}

// FilesystemName names a filesystem magic number for messages.
func FilesystemName(magic int64) string {
	names := map[int64]string{
		unix.EXT4_SUPER_MAGIC:      "ext4",
		unix.BTRFS_SUPER_MAGIC:     "btrfs",
		unix.XFS_SUPER_MAGIC:       "xfs",
		unix.TMPFS_MAGIC:           "tmpfs",
		unix.OVERLAYFS_SUPER_MAGIC: "overlayfs",
		unix.NFS_SUPER_MAGIC:       "nfs",
		unix.FUSE_SUPER_MAGIC:      "fuse",
	}
	if name, ok := names[magic]; ok {
		return name
	}
	return fmt.Sprintf("filesystem 0x%x", magic)
}
