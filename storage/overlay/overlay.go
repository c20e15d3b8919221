// Package overlay holds the mount recipe of the overlay storage backend
// (issue 10 spike; see docs/storage-overlay.md): a container's root is an
// overlay whose lower layer is a read-only image directory and whose upper
// layer is the container's own directory, both with natural ids 0..65535 on
// disk and no chown.
//
// Overlayfs itself cannot be idmapped (mount_setattr gives EINVAL), and an
// overlay mounted by host root over idmapped layers cannot create its work
// directory (EOVERFLOW) and falls back to read-only. What works is in two
// halves:
//
//   - the host (lodge's monitor) clones each layer's directory and idmaps the
//     clone through the container's user namespace (IdmapLayer), then hands
//     the detached mounts to the container's first process;
//   - that process, root in its user and mount namespaces, creates the overlay
//     from the descriptors with userxattr (Mount) and sends the detached
//     overlay back, to be attached and locked like every other mount.
package overlay

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// IdmapLayer returns a detached, idmapped clone of the mount of dir, seen
// through the user namespace userns (an open /proc/PID/ns/user), read-only
// when readOnly. It runs on the host, as root of the initial user namespace.
// A lower layer is the image directory; an upper layer is the directory
// holding both "upper" and "work" (overlay wants them on one mount).
func IdmapLayer(dir string, userns *os.File, readOnly bool) (*os.File, error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, dir, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("clone mount of %s: %w", dir, err)
	}
	attr := unix.MountAttr{
		Attr_set:  unix.MOUNT_ATTR_IDMAP | unix.MOUNT_ATTR_NODEV,
		Userns_fd: uint64(userns.Fd()),
	}
	if readOnly {
		attr.Attr_set |= unix.MOUNT_ATTR_RDONLY
	}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &attr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("idmap the mount of %s: %w", dir, err)
	}
	return os.NewFile(uintptr(fd), dir), nil
}

// OpenBelow opens name below the layer mount layer (no symlink followed) as
// an O_PATH directory descriptor: the upper and work directories are passed
// to the overlay as descriptors on the idmapped mount, never as host paths.
func OpenBelow(layer *os.File, name string) (*os.File, error) {
	how := unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	}
	fd, err := unix.Openat2(int(layer.Fd()), name, &how)
	if err != nil {
		return nil, fmt.Errorf("open %s in %s: %w", name, layer.Name(), err)
	}
	return os.NewFile(uintptr(fd), name), nil
}

// Mount creates the overlay as a detached mount from layer descriptors
// (lowers topmost first). It must run as root of the container's user
// namespace, in a mount namespace that namespace owns: overlay is mountable
// there (FS_USERNS_MOUNT), and it must use userxattr, as trusted.* xattrs
// need host privileges.
//
// When the layers are on more than one filesystem (an upper on the
// container's own disk image, limits.disk), it adds xino=on: without it a
// file that is not a directory reports its layer's st_dev, not the
// overlay's, while inotify names the overlay's, so that CRIU (and lodge's
// irmap cache) cannot find the path of a watched file and the checkpoint
// fails. With xino every file has the overlay's st_dev and a unique inode
// number (the layer in its high bits). xino=auto would fall back to off in a
// user namespace (it wants file handles, which an overlay mounted there does
// not get); on one filesystem the kernel ignores xino=on and says so, so it
// is left out there.
func Mount(lowers []*os.File, upper, work *os.File) (*os.File, error) {
	var options []string
	if !oneFilesystem(append([]*os.File{upper}, lowers...)) {
		options = append(options, "xino=on")
	}
	return mountWith(lowers, upper, work, options)
}

// oneFilesystem says whether the layers all lie on one filesystem (one
// st_dev; one that cannot be read counts as another).
func oneFilesystem(layers []*os.File) bool {
	var first unix.Stat_t
	for i, l := range layers {
		var st unix.Stat_t
		if err := unix.Fstat(int(l.Fd()), &st); err != nil {
			return false
		}
		if i == 0 {
			first = st
		} else if st.Dev != first.Dev {
			return false
		}
	}
	return true
}

// mountWith is Mount with more options ("index=on").
func mountWith(lowers []*os.File, upper, work *os.File, options []string) (*os.File, error) {
	fs, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("open an overlay filesystem: %w", err)
	}
	defer unix.Close(fs)
	for _, l := range lowers {
		if err := unix.FsconfigSetFd(fs, "lowerdir+", int(l.Fd())); err != nil {
			return nil, fmt.Errorf("overlay lower layer %s: %w", l.Name(), err)
		}
	}
	if err := unix.FsconfigSetFd(fs, "upperdir", int(upper.Fd())); err != nil {
		return nil, fmt.Errorf("overlay upper layer: %w", err)
	}
	if err := unix.FsconfigSetFd(fs, "workdir", int(work.Fd())); err != nil {
		return nil, fmt.Errorf("overlay work directory: %w", err)
	}
	if err := unix.FsconfigSetFlag(fs, "userxattr"); err != nil {
		return nil, fmt.Errorf("overlay option userxattr: %w", err)
	}
	for _, opt := range options {
		key, value, _ := strings.Cut(opt, "=")
		if err := unix.FsconfigSetString(fs, key, value); err != nil {
			return nil, fmt.Errorf("overlay option %s: %w", opt, err)
		}
	}
	if err := unix.FsconfigCreate(fs); err != nil {
		return nil, fmt.Errorf("create the overlay: %w", err)
	}
	mnt, err := unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("mount the overlay: %w", err)
	}
	return os.NewFile(uintptr(mnt), "overlay"), nil
}
