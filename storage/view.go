package storage

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// View is a container's merged root filesystem as the host sees it, for
// lodge's own reads and writes (hostname, /etc/passwd, the init's path).
type View struct {
	// Dir is a path to the merged root. For overlay it is /proc/self/fd/N
	// of a detached mount (a magic link: walk Dir+"/", not Dir), valid in
	// this process only, and only until Close.
	Dir string
	mnt *os.File
}

// Close releases the view (a detached overlay is unmounted with its last
// descriptor).
func (v *View) Close() error {
	if v.mnt == nil {
		return nil
	}
	err := v.mnt.Close()
	v.mnt = nil
	return err
}

// OpenView returns the merged root of the container whose directory is
// containerDir in the lodge root root. For dir and btrfs that is the rootfs
// directory itself. For overlay it is a detached overlay that host root
// mounts over the same layers, not idmapped: files keep their natural ids,
// and what host root writes lands as owner 0 on disk, the container's root.
// A writable view uses the tree's upper and work directories, so it must
// only be opened while the container is stopped (its caller holds the
// container's lock); a read-only one stacks the upper as one more lower and
// may be opened while the container runs (a file the container changes
// meanwhile may read old or new).
func OpenView(root, containerDir string, writable bool) (*View, error) {
	rec, err := ReadRecord(containerDir)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(containerDir, "rootfs")
	if rec.Backend != OverlayName {
		return &View{Dir: path}, nil
	}
	o := Overlay{root: root}
	if err := o.Recover(); err != nil {
		return nil, err
	}
	t, err := ReadTree(path)
	if err != nil {
		return nil, err
	}
	mnt, err := o.mountView(path, t, writable)
	if err != nil {
		return nil, fmt.Errorf("open the root filesystem of %s: %w", filepath.Base(containerDir), err)
	}
	return &View{Dir: "/proc/self/fd/" + strconv.Itoa(int(mnt.Fd())), mnt: mnt}, nil
}

// mountView mounts the overlay of tree path as a detached mount.
func (o Overlay) mountView(path string, t Tree, writable bool) (*os.File, error) {
	// The overlay keeps its own clones of the layers' mounts: the disk
	// image's mount can go when it is made.
	u, err := OpenUpperDir(path)
	if err != nil {
		return nil, err
	}
	defer u.Close()
	lowers := o.Lowers(t)
	if !writable {
		lowers = append([]string{filepath.Join(u.Dir, "upper")}, lowers...)
	}
	fs, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("open an overlay filesystem: %w", err)
	}
	defer unix.Close(fs)
	for _, l := range lowers {
		if err := unix.FsconfigSetString(fs, "lowerdir+", l); err != nil {
			return nil, fmt.Errorf("overlay lower layer %s: %w", l, err)
		}
	}
	if writable {
		if err := unix.FsconfigSetString(fs, "upperdir", filepath.Join(u.Dir, "upper")); err != nil {
			return nil, fmt.Errorf("overlay upper layer: %w", err)
		}
		if err := unix.FsconfigSetString(fs, "workdir", filepath.Join(u.Dir, "work")); err != nil {
			return nil, fmt.Errorf("overlay work directory: %w", err)
		}
	}
	// The container's overlay keeps its whiteouts' and opaque directories'
	// marks in user.overlay.* xattrs; this one must read and write the same.
	if err := unix.FsconfigSetFlag(fs, "userxattr"); err != nil {
		return nil, fmt.Errorf("overlay option userxattr: %w", err)
	}
	if err := unix.FsconfigCreate(fs); err != nil {
		return nil, fmt.Errorf("create the overlay: %w", err)
	}
	attrs := unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOSUID
	if !writable {
		attrs |= unix.MOUNT_ATTR_RDONLY
	}
	mnt, err := unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC, attrs)
	if err != nil {
		return nil, fmt.Errorf("mount the overlay: %w", err)
	}
	return os.NewFile(uintptr(mnt), "overlay view of "+path), nil
}
