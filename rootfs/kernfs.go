package rootfs

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

const kernelFSFlags = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC

// /proc entries that stay visible but read-only: writing them would reach the
// host kernel (sysctls outside the container's own namespaces, sysrq, irq
// affinity, bus devices).
var procReadOnly = []string{"sys", "sysrq-trigger", "irq", "bus", "fs"}

// /proc entries that are hidden: they leak host memory, keys or timing details.
var procMaskedFiles = []string{"kcore", "keys", "latency_stats", "timer_list", "timer_stats", "sched_debug"}
var procMaskedDirs = []string{"acpi", "scsi"}

// /proc/sys/net belongs to the container's own network namespace, so it stays writable.
const procSysNet = "sys/net"

func mountProc(root string) error {
	proc := filepath.Join(root, "proc")
	if err := mountFS("proc", proc, "proc", kernelFSFlags, ""); err != nil {
		return err
	}
	for _, name := range procReadOnly {
		if err := bindReadOnly(filepath.Join(proc, name)); err != nil {
			return err
		}
	}
	if err := bindWritable(filepath.Join(proc, procSysNet)); err != nil {
		return err
	}
	for _, name := range procMaskedFiles {
		if err := maskFile(filepath.Join(proc, name)); err != nil {
			return err
		}
	}
	for _, name := range procMaskedDirs {
		if err := maskDir(filepath.Join(proc, name)); err != nil {
			return err
		}
	}
	return nil
}

func mountSys(root string) error {
	return mountFS("sysfs", filepath.Join(root, "sys"), "sysfs", kernelFSFlags|unix.MS_RDONLY, "")
}

// mountCgroups mounts the container's cgroup filesystems. With a cgroup
// namespace, each shows the container's own cgroup as its root. On hybrid and
// v1 hosts they sit on a read-only tmpfs, the layout systemd expects.
func mountCgroups(root string, mounts []CgroupMount) error {
	base := filepath.Join(root, "sys/fs/cgroup")
	if len(mounts) == 1 && mounts[0].Target == "" {
		return mountFS("cgroup2", base, "cgroup2", kernelFSFlags, mounts[0].Data)
	}
	if err := mountFS("tmpfs", base, "tmpfs", kernelFSFlags, "mode=755,size=64k"); err != nil {
		return err
	}
	for _, m := range mounts {
		if err := mountFS("cgroup", filepath.Join(base, m.Target), m.FSType, kernelFSFlags, m.Data); err != nil {
			return err
		}
		for _, link := range m.Symlinks {
			if err := os.Symlink(m.Target, filepath.Join(base, link)); err != nil {
				return fmt.Errorf("link %s: %w", link, err)
			}
		}
	}
	return setReadOnly(base)
}

// mountRun gives init an empty tmpfs /run carrying /run/systemd/container, as
// systemd's Container Interface describes; init systems other than systemd
// find it there as well.
func mountRun(root string) error {
	run := filepath.Join(root, "run")
	if err := mountFS("tmpfs", run, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=755"); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(run, "systemd"), 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(run, "systemd/container"), []byte(ContainerManager+"\n"), 0o444)
}

// ContainerManager is the value of $container and /run/systemd/container.
const ContainerManager = "lodge"

// mountFS mounts a filesystem at target, creating the directory if needed.
func mountFS(source, target, fstype string, flags uintptr, data string) error {
	if err := os.MkdirAll(target, 0o755); err != nil {
		return fmt.Errorf("create mount point %s: %w", target, err)
	}
	if err := unix.Mount(source, target, fstype, flags, data); err != nil {
		return fmt.Errorf("mount %s on %s (%s): %w", fstype, target, data, err)
	}
	return nil
}

func bindReadOnly(path string) error {
	if !exists(path) {
		return nil
	}
	if err := unix.Mount(path, path, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s: %w", path, err)
	}
	return setReadOnly(path)
}

func bindWritable(path string) error {
	if !exists(path) {
		return nil
	}
	if err := unix.Mount(path, path, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s: %w", path, err)
	}
	attr := unix.MountAttr{Attr_clr: unix.MOUNT_ATTR_RDONLY}
	if err := unix.MountSetattr(unix.AT_FDCWD, path, 0, &attr); err != nil {
		return fmt.Errorf("make %s writable: %w", path, err)
	}
	return nil
}

func setReadOnly(path string) error {
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
	if err := unix.MountSetattr(unix.AT_FDCWD, path, 0, &attr); err != nil {
		return fmt.Errorf("make %s read-only: %w", path, err)
	}
	return nil
}

// maskFile hides a file behind the host's /dev/null (mounted while the host tree
// is still reachable, before pivot_root).
func maskFile(path string) error {
	if !exists(path) {
		return nil
	}
	if err := unix.Mount("/dev/null", path, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("mask %s: %w", path, err)
	}
	return nil
}

func maskDir(path string) error {
	if !exists(path) {
		return nil
	}
	return mountFS("tmpfs", path, "tmpfs", kernelFSFlags|unix.MS_RDONLY, "size=0")
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return !errors.Is(err, os.ErrNotExist)
}

// bindBootID gives each boot of the container its own boot id. The kernel's
// /proc/sys/kernel/random/boot_id is the host's, so every container boot
// within one host boot would share it, and journalctl -b could not tell them
// apart. A fresh random id is written to a file on the container's /run,
// bound read-only over it, and unlinked (the bind keeps it).
func bindBootID(root string) error {
	target := filepath.Join(root, "proc/sys/kernel/random/boot_id")
	if !exists(target) {
		return nil
	}
	id, err := randomUUID()
	if err != nil {
		return err
	}
	file := filepath.Join(root, "run/.lodge-boot-id")
	if err := os.WriteFile(file, []byte(id+"\n"), 0o444); err != nil {
		return err
	}
	defer os.Remove(file)
	if err := unix.Mount(file, target, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind boot id: %w", err)
	}
	return setReadOnly(target)
}

// randomUUID returns a random (version 4) UUID in its text form.
func randomUUID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:]), nil
}

// bindViews binds the views server's files over /proc/meminfo and friends.
// The sources are descriptors the host opened in this mount namespace, reached
// through /proc/self/fd, so no host path is looked up as the container's root.
func bindViews(root string, views []View) error {
	for _, v := range views {
		source := "/proc/self/fd/" + strconv.Itoa(int(v.Source.Fd()))
		target := filepath.Join(root, v.Target)
		if !exists(target) {
			continue // the kernel lacks it (no /sys/devices/system/cpu, say)
		}
		if err := unix.Mount(source, target, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind the view of %s: %w", v.Target, err)
		}
		// Read-only, keeping the flags the user namespace cannot drop.
		flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV)
		if err := unix.Mount("", target, "", flags, ""); err != nil {
			return fmt.Errorf("make the view of %s read-only: %w", v.Target, err)
		}
	}
	return nil
}
