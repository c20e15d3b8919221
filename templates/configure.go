package templates

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// ConfigureHostname names the system after the container: /etc/hostname and
// /etc/hosts. Every template and image gets it; systemd, sysvinit and busybox
// set the hostname from /etc/hostname at boot (debootstrap leaves the build
// host's name there).
func ConfigureHostname(rootfs, container string) error {
	hosts := fmt.Sprintf("127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\n", container)
	if err := writeInRoot(rootfs, "etc/hostname", []byte(container+"\n"), 0o644); err != nil {
		return err
	}
	return writeInRoot(rootfs, "etc/hosts", []byte(hosts), 0o644)
}

// writeInRoot replaces the file rel of the root filesystem rootfs. The image
// may come from anyone's tarball: its directories are resolved as inside the
// container (a symlink to /etc resolves to rootfs/etc, never to the host's),
// and a symlink at rel itself is replaced, not written through.
func writeInRoot(rootfs, rel string, data []byte, mode uint32) error {
	root, err := unix.Open(rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", rootfs, err)
	}
	defer unix.Close(root)
	dirName, name := filepath.Split(rel)
	dir, err := unix.Openat2(root, dirName, &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV})
	if err != nil {
		return fmt.Errorf("write /%s in %s: /%s: %w", rel, rootfs, dirName, err)
	}
	defer unix.Close(dir)
	tmp := "." + name + ".lodge-" + strconv.Itoa(os.Getpid())
	unix.Unlinkat(dir, tmp, 0)
	fd, err := unix.Openat(dir, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, mode)
	if err != nil {
		return fmt.Errorf("write /%s in %s: %w", rel, rootfs, err)
	}
	f := os.NewFile(uintptr(fd), tmp)
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(os.FileMode(mode))
	}
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	if err == nil {
		err = unix.Renameat(dir, tmp, dir, name)
	}
	if err != nil {
		unix.Unlinkat(dir, tmp, 0)
		return fmt.Errorf("write /%s in %s: %w", rel, rootfs, err)
	}
	return nil
}
