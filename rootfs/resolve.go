package rootfs

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

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
