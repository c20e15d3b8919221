package rootfs

import (
	"fmt"

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

// devMounts are the container's /dev and devpts, for the console.
type devMounts struct{ dev, pts int }

func (d *devMounts) close() {
	if d != nil {
		unix.Close(d.dev)
		unix.Close(d.pts)
	}
}

// mountDev builds a minimal /dev on a tmpfs: bound device nodes, a private
// devpts instance (so the container's ptys are its own), /dev/shm and
// /dev/mqueue; with nesting, also an unmasked proc and sysfs in /dev/.lodge.
func mountDev(root int, nesting bool) (*devMounts, error) {
	dev, err := newMount("tmpfs", "mode=755,size=64k", unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NOEXEC)
	if err != nil {
		return nil, err
	}
	d := &devMounts{dev: dev, pts: -1}
	if err := d.build(root, nesting); err != nil {
		d.close()
		return nil, err
	}
	return d, nil
}

func (d *devMounts) build(root int, nesting bool) error {
	if err := attachAt(d.dev, root, "dev"); err != nil {
		return err
	}
	for _, name := range deviceNodes {
		if err := bindDevice(d.dev, name); err != nil {
			return err
		}
	}
	var err error
	// gid 5 is the tty group of Debian and of the busybox template.
	if d.pts, err = newMount("devpts", "ptmxmode=0666,mode=0620,gid=5", unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NOEXEC); err != nil {
		return err
	}
	mounts := []devMount{
		{"pts", d.pts, "", "", 0},
		{"shm", -1, "tmpfs", "mode=1777", unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV},
		{"mqueue", -1, "mqueue", "", kernelFSAttrs},
	}
	if nesting {
		mounts = append(mounts, nestingMounts...)
	}
	for _, m := range mounts {
		if err := mountIn(d.dev, m); err != nil {
			return err
		}
	}
	for name, target := range devSymlinks {
		if err := unix.Symlinkat(target, d.dev, name); err != nil {
			return fmt.Errorf("link /dev/%s: %w", name, err)
		}
	}
	return nil
}

// devMount is a filesystem mounted below /dev: fd, or a new one of fstype.
type devMount struct {
	name         string
	fd           int
	fstype, opts string
	attrs        int
}

// nestingMounts give a container with security.nesting what nested
// containers need: a proc and a sysfs without masks or read-only binds. The
// kernel lets a user namespace mount a new proc or sysfs (for a nested pid or
// network namespace) only if one is already fully visible in its mount
// namespace, and lodge's own /proc and /sys are not (their masks are locked).
// The cost: through these, the container sees what the masks hide
// (/proc/timer_list, /proc/keys, ...) and the writable view of what is
// read-only in /proc and /sys; what container root may write there is still
// checked by the kernel against its user namespace.
var nestingMounts = []devMount{
	{".lodge/proc", -1, "proc", "", kernelFSAttrs},
	{".lodge/sys", -1, "sysfs", "", kernelFSAttrs},
}

// mountIn mounts fd, or a new filesystem when fd is -1, on dev/name.
func mountIn(dev int, m devMount) error {
	fd := m.fd
	if fd < 0 {
		var err error
		if fd, err = newMount(m.fstype, m.opts, m.attrs); err != nil {
			return err
		}
		defer unix.Close(fd)
	}
	return attachAt(fd, dev, m.name)
}

// bindDevice binds the host's /dev/NAME onto an empty file in the container's /dev.
func bindDevice(dev int, name string) error {
	target, err := createFile(dev, name, 0o666)
	if err != nil {
		return err
	}
	defer unix.Close(target)
	src, err := cloneMount(unix.AT_FDCWD, "/dev/"+name, false)
	if err != nil {
		return err
	}
	defer unix.Close(src)
	if err := attach(src, target); err != nil {
		return fmt.Errorf("bind /dev/%s: %w", name, err)
	}
	return nil
}
