package rootfs

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"lodge/internal/failpoint"
)

// Spec describes the part of a container's mount tree that its first process
// mounts itself, on the locked tree the host built (see Stage).
type Spec struct {
	Rootfs  string   // host path of the root filesystem, for messages
	Root    *os.File // the locked tree's root in this mount namespace (O_PATH)
	Views   []View   // the views not locked (see LockedView), opened in this mount namespace
	Nesting bool     // add an unmasked proc and sysfs for nested containers
}

// View is one file (or directory) of the views server, bound over a path of the
// container's /proc or /sys.
type View struct {
	Source *os.File // the server's file, opened by the host in this mount namespace
	Target string   // absolute path inside the container, e.g. /proc/meminfo
}

// OpenTarget opens dir, as seen in the mount namespace of process pid (the
// container's first process), as an O_PATH descriptor for that process. The
// container's root cannot look up host paths like ROOT/containers/NAME (they
// are private to host root), so the host opens it, through /proc/PID/root so
// that the descriptor refers to the container's copy of the mount.
func OpenTarget(pid int, dir string) (*os.File, error) {
	path := filepath.Join("/proc", strconv.Itoa(pid), "root", dir)
	fd, err := unix.Open(path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	return os.NewFile(uintptr(fd), dir), nil
}

// CgroupMount is one cgroup filesystem to mount inside the container.
type CgroupMount struct {
	Target   string   // relative to /sys/fs/cgroup; "" mounts at /sys/fs/cgroup itself
	FSType   string   // "cgroup" or "cgroup2"
	Data     string   // mount options, e.g. "memory" or "none,name=systemd"
	Symlinks []string // names under /sys/fs/cgroup that point at Target
}

// LockedView says whether the view at target is bound by the stage (locked)
// or by the container's first process (not locked): those over /proc are
// locked, since below /proc nothing may stay unlocked (see mountLocked); the
// CPU directory in /sys is not: a locked bind over a non-empty directory makes
// sysfs not "fully visible", and the kernel would refuse the read-only sysfs
// that `ip netns exec` mounts for a new network namespace.
func LockedView(target string) bool { return strings.HasPrefix(target, "/proc/") }

// PrepareTree creates the directories lodge mounts on in a root filesystem
// (the detached tree from OpenTree), as the container's root so that they get
// its ownership, and checks that none of them is a symlink.
func PrepareTree(tree *os.File) error {
	for _, dir := range []string{"proc", "sys", "dev", "run"} {
		fd, err := mkdirInTree(int(tree.Fd()), dir)
		if err != nil {
			return err
		}
		unix.Close(fd)
	}
	return nil
}

// Assemble mounts the container's own /run, /dev and console on the locked tree and makes it the root. It must run in the container's
// first process, in its user and mount namespaces, before init is executed.
// These mounts belong to the container (it may unmount or remount them:
// nothing of the host is under them). It returns the console pty made in the
// container's devpts.
func Assemble(spec Spec) (*Console, error) {
	root := int(spec.Root.Fd())
	var devices *devMounts
	steps := []struct {
		name string
		run  func() error
	}{
		{"run", func() error { return mountRun(root) }},
		{"sysviews", func() error { return bindViews(root, spec.Views) }},
		{"dev", func() (err error) { devices, err = mountDev(root, spec.Nesting); return err }},
	}
	for _, step := range steps {
		if err := failpoint.Check("mount-" + step.name); err != nil {
			return nil, err
		}
		if err := step.run(); err != nil {
			return nil, fmt.Errorf("mount %s: %w", step.name, err)
		}
	}
	defer devices.close()
	console, err := newConsole(devices)
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	if err := failpoint.Check("pivot"); err != nil {
		console.Close()
		return nil, err
	}
	if err := pivot(root); err != nil {
		console.Close()
		return nil, fmt.Errorf("pivot_root to %s: %w", spec.Rootfs, err)
	}
	return console, nil
}

// pivot makes root the container's / and detaches the host's tree entirely, so
// nothing of the host stays reachable.
func pivot(root int) error {
	oldRoot, err := unix.Open("/", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(oldRoot)
	if err := unix.Fchdir(root); err != nil {
		return err
	}
	// pivot_root(".", ".") stacks the old root on top of the new one; no
	// directory for it is needed in the container's filesystem.
	if err := unix.PivotRoot(".", "."); err != nil {
		return err
	}
	if err := unix.Fchdir(oldRoot); err != nil {
		return err
	}
	if err := unix.Mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return err
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach host root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	// The tree came by propagation from the stage; it owes it nothing more.
	return unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, "")
}
