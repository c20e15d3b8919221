package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// OpenInRoot opens path as the container would see it: symlinks (absolute ones
// too) resolve inside root and can never lead out of it. The host reads files
// of a container this way, since the container controls their symlinks.
func OpenInRoot(root, path string) (*os.File, error) {
	rootFD, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(rootFD)
	how := unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	}
	fd, err := unix.Openat2(rootFD, path, &how)
	if err != nil {
		return nil, fmt.Errorf("open %s in %s: %w", path, root, err)
	}
	return os.NewFile(uintptr(fd), filepath.Join(root, path)), nil
}

// ResolveInRoot returns the path inside root that path leads to once its
// symlinks are resolved the way the container resolves them.
func ResolveInRoot(root, path string) (string, error) {
	f, err := OpenInRoot(root, path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	host, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(f.Fd())))
	if err != nil {
		return "", err
	}
	rel, err := filepath.Rel(root, host)
	if err != nil {
		return "", err
	}
	return "/" + rel, nil
}

// WriteFileInRoot replaces the file at path inside root with data, as host
// root writing into a tree the container controls: the directory is resolved
// as the container would (symlinks stay inside root), and the file is
// written to a new name and renamed over the old one, so a symlink (or hard
// link) at path is replaced, never written through.
func WriteFileInRoot(root, path string, data []byte, mode os.FileMode) error {
	rootFD, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(rootFD)
	dir, name := filepath.Split(filepath.Clean("/" + path))
	how := unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	}
	dirFD, err := unix.Openat2(rootFD, dir, &how)
	if errors.Is(err, unix.ENOENT) && strings.Count(strings.Trim(dir, "/"), "/") == 0 {
		// A missing top-level directory (an image without /etc).
		if err = unix.Mkdirat(rootFD, strings.Trim(dir, "/"), 0o755); err == nil {
			dirFD, err = unix.Openat2(rootFD, dir, &how)
		}
	}
	if err != nil {
		return fmt.Errorf("open %s in %s: %w", dir, root, err)
	}
	defer unix.Close(dirFD)
	tmp := fmt.Sprintf(".%s.lodge-%d", name, os.Getpid())
	fd, err := unix.Openat(dirFD, tmp, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(mode.Perm()))
	if err != nil {
		return fmt.Errorf("create %s in %s: %w", path, root, err)
	}
	f := os.NewFile(uintptr(fd), tmp)
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode.Perm()) // the umask applied at creation
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(dirFD, tmp, dirFD, name)
	}
	if err != nil {
		unix.Unlinkat(dirFD, tmp, 0)
		return fmt.Errorf("write %s in %s: %w", path, root, err)
	}
	return nil
}
