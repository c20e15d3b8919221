package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// Every mount into a container's tree is made by descriptor: its target is
// opened inside the tree without following any symlink, and the mount is
// attached to that descriptor (move_mount). The image controls its symlinks,
// and a mount made through one could land anywhere on the host (the runc CVE
// class); a symlink where lodge mounts is refused with the path named.

// inTree resolves paths below a directory descriptor as its root, following
// no symlink (absolute or relative, magic or not).
const inTree = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

// openInTree opens name below root as an O_PATH descriptor (a directory when
// dir is set).
func openInTree(root int, name string, dir bool) (int, error) {
	fd, err := openRaw(root, name, dir)
	if err != nil {
		return -1, treePathError(name, err)
	}
	return fd, nil
}

// openRaw is openInTree with the kernel's bare error.
func openRaw(root int, name string, dir bool) (int, error) {
	how := unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: inTree}
	if dir {
		how.Flags |= unix.O_DIRECTORY
	}
	for try := 0; ; try++ {
		fd, err := unix.Openat2(root, name, &how)
		if (err == unix.EINTR || err == unix.EAGAIN) && try < 16 {
			continue // a concurrent rename or mount: the kernel asks for a retry
		}
		return fd, err
	}
}

// treePathError says what is wrong with a path of the image lodge mounts at.
func treePathError(name string, err error) error {
	p := "/" + strings.TrimPrefix(path.Clean(name), "/")
	switch {
	case errors.Is(err, unix.ELOOP):
		return fmt.Errorf("%s in the root filesystem is, or is below, a symbolic link: lodge mounts there and never follows the image's links; make it a real directory (or file): %w", p, err)
	case errors.Is(err, unix.ENOTDIR):
		return fmt.Errorf("%s in the root filesystem is not a directory where lodge mounts one: %w", p, err)
	}
	return fmt.Errorf("open %s in the root filesystem: %w", p, err)
}

// mkdirInTree opens the directory name below root, creating the missing
// components (mode 0755) one at a time relative to their parent: nothing is
// created through a symlink either.
func mkdirInTree(root int, name string) (int, error) {
	fd, err := unix.Dup(root)
	if err != nil {
		return -1, err
	}
	done := ""
	for _, comp := range strings.Split(path.Clean(strings.TrimPrefix(name, "/")), "/") {
		if comp == "." || comp == "" {
			continue
		}
		done = path.Join(done, comp)
		next, err := openRaw(fd, comp, true)
		if errors.Is(err, unix.ENOENT) {
			if err := unix.Mkdirat(fd, comp, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
				unix.Close(fd)
				return -1, fmt.Errorf("create mount point /%s: %w", done, err)
			}
			next, err = openRaw(fd, comp, true)
		}
		unix.Close(fd)
		if err != nil {
			return -1, treePathError(done, err)
		}
		fd = next
	}
	return fd, nil
}

// attach mounts the detached mount mnt on the file or directory target.
func attach(mnt, target int) error {
	return unix.MoveMount(mnt, "", target, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
}

// attachAt mounts mnt on name below root (a directory, created if missing).
func attachAt(mnt, root int, name string) error {
	target, err := mkdirInTree(root, name)
	if err != nil {
		return err
	}
	defer unix.Close(target)
	if err := attach(mnt, target); err != nil {
		return fmt.Errorf("mount on /%s: %w", name, err)
	}
	return nil
}

// newMount creates a detached mount of a new filesystem instance. options are
// mount(8)-style: "mode=755,size=64k", or "none,name=systemd".
func newMount(fstype, options string, attrs int) (int, error) {
	fs, err := unix.Fsopen(fstype, unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("open a %s filesystem: %w", fstype, err)
	}
	defer unix.Close(fs)
	for _, opt := range strings.Split(options, ",") {
		if opt == "" {
			continue
		}
		key, value, hasValue := strings.Cut(opt, "=")
		if hasValue {
			err = unix.FsconfigSetString(fs, key, value)
		} else {
			err = unix.FsconfigSetFlag(fs, key)
		}
		if err != nil {
			return -1, fmt.Errorf("%s option %s: %w", fstype, opt, err)
		}
	}
	if err := unix.FsconfigCreate(fs); err != nil {
		return -1, fmt.Errorf("create %s filesystem (%s): %w", fstype, options, err)
	}
	mnt, err := unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC, attrs)
	if err != nil {
		return -1, fmt.Errorf("mount %s filesystem: %w", fstype, err)
	}
	return mnt, nil
}

// cloneMount returns a detached copy of the mount at name below dir (name ""
// for dir itself), with the mounts below it when recursive.
func cloneMount(dir int, name string, recursive bool) (int, error) {
	flags := uint(unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC)
	if name == "" {
		flags |= unix.AT_EMPTY_PATH
	}
	if recursive {
		flags |= unix.AT_RECURSIVE
	}
	fd, err := unix.OpenTree(dir, name, flags)
	if err != nil {
		return -1, fmt.Errorf("clone mount %s: %w", name, err)
	}
	return fd, nil
}

// setAttrs changes the flags of the mount mnt (and those below it when
// recursive).
func setAttrs(mnt int, set, clear uint64, recursive bool) error {
	flags := unix.AT_EMPTY_PATH
	if recursive {
		flags |= unix.AT_RECURSIVE
	}
	attr := unix.MountAttr{Attr_set: set, Attr_clr: clear}
	return unix.MountSetattr(mnt, "", uint(flags), &attr)
}

// bindOnto binds a copy of the mount at src (a descriptor of a file or
// directory) onto target, with the given flags; name is for messages.
func bindOnto(src, target int, name string, set, clear uint64) error {
	mnt, err := cloneMount(src, "", false)
	if err != nil {
		return err
	}
	defer unix.Close(mnt)
	if set|clear != 0 {
		if err := setAttrs(mnt, set, clear, false); err != nil {
			return fmt.Errorf("set flags of the bind on %s: %w", name, err)
		}
	}
	if err := attach(mnt, target); err != nil {
		return fmt.Errorf("bind on %s: %w", name, err)
	}
	return nil
}

// createFile creates an empty regular file name in dir (which lodge made
// itself), as a mount point for a bind.
func createFile(dir int, name string, mode uint32) (int, error) {
	fd, err := unix.Openat(dir, name, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, mode)
	if err != nil {
		return -1, fmt.Errorf("create %s: %w", name, err)
	}
	unix.Close(fd)
	return openInTree(dir, name, false)
}

// writeFileAt writes a new file name in dir (which lodge made itself).
func writeFileAt(dir int, name string, data []byte, mode uint32) error {
	fd, err := unix.Openat(dir, name, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, mode)
	if err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

func fileOf(fd int, name string) *os.File { return os.NewFile(uintptr(fd), name) }
