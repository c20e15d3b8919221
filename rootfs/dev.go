package rootfs

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// deviceNodes are bound from the host: a user namespace cannot mknod, and these
// are harmless character devices every program expects.
var deviceNodes = []string{"null", "zero", "full", "random", "urandom", "tty"}

var devSymlinks = map[string]string{
	"fd":     "/proc/self/fd",
	"stdin":  "/proc/self/fd/0",
	"stdout": "/proc/self/fd/1",
	"stderr": "/proc/self/fd/2",
	"ptmx":   "pts/ptmx",
}

// mountDev builds a minimal /dev on a tmpfs: bound device nodes, a private
// devpts instance (so the container's ptys are its own), /dev/shm and /dev/mqueue.
func mountDev(root string) error {
	dev := filepath.Join(root, "dev")
	if err := mountFS("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "mode=755,size=64k"); err != nil {
		return err
	}
	for _, name := range deviceNodes {
		if err := bindDevice("/dev/"+name, filepath.Join(dev, name)); err != nil {
			return err
		}
	}
	// gid 5 is the tty group of Debian and of the busybox template.
	if err := mountFS("devpts", filepath.Join(dev, "pts"), "devpts", unix.MS_NOSUID|unix.MS_NOEXEC,
		"newinstance,ptmxmode=0666,mode=0620,gid=5"); err != nil {
		return err
	}
	if err := mountFS("shm", filepath.Join(dev, "shm"), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777"); err != nil {
		return err
	}
	if err := mountFS("mqueue", filepath.Join(dev, "mqueue"), "mqueue", kernelFSFlags, ""); err != nil {
		return err
	}
	for name, target := range devSymlinks {
		if err := os.Symlink(target, filepath.Join(dev, name)); err != nil {
			return fmt.Errorf("link /dev/%s: %w", name, err)
		}
	}
	return nil
}

// bindDevice binds a host device node onto an empty file at target.
func bindDevice(source, target string) error {
	f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY, 0o666)
	if err != nil {
		return fmt.Errorf("create %s: %w", target, err)
	}
	f.Close()
	if err := unix.Mount(source, target, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s: %w", source, err)
	}
	return nil
}
