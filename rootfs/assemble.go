package rootfs

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"lodge/manager/failpoint"
)

// Spec describes a container's mount tree.
type Spec struct {
	Rootfs  string        // host path of the root filesystem, for messages
	Target  *os.File      // that directory, opened by the host (O_PATH): Tree is attached over it
	Tree    *os.File      // detached mount of the root filesystem, from OpenTree
	Cgroups []CgroupMount // the cgroup filesystems to mount under /sys/fs/cgroup
	Views   []View        // files of lodge's /proc and /sys views to bind (may be empty)
}

// View is one file (or directory) of the views server, bound over a path of the
// container's /proc or /sys.
type View struct {
	Source *os.File // the server's file, opened by the host in this mount namespace
	Target string   // absolute path inside the container, e.g. /proc/meminfo
}

// OpenTarget opens dir, as seen in the mount namespace of process pid (the
// container's first process), as the attachment point for Spec.Target. The
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

// Assemble builds the container's mount tree and makes it the root. It must run
// in the container's first process, in its new user and mount namespaces, before
// init is executed. It returns the console pty made in the container's devpts.
func Assemble(spec Spec) (*Console, error) {
	// Mounts copied from the host must not propagate back to it.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return nil, fmt.Errorf("make mounts private: %w", err)
	}
	if err := failpoint.Check("mount-rootfs"); err != nil {
		return nil, err
	}
	if err := attachTree(spec); err != nil {
		return nil, err
	}
	// From here on, paths are relative to the container's root, the working
	// directory: no host path is looked up as the container's root.
	const root = "."
	steps := []struct {
		name string
		run  func(root string) error
	}{
		{"proc", mountProc},
		{"sys", mountSys},
		{"views", func(root string) error { return bindViews(root, spec.Views) }},
		{"cgroup", func(root string) error { return mountCgroups(root, spec.Cgroups) }},
		{"run", mountRun},
		{"bootid", bindBootID},
		{"dev", mountDev},
	}
	for _, step := range steps {
		if err := failpoint.Check("mount-" + step.name); err != nil {
			return nil, err
		}
		if err := step.run(root); err != nil {
			return nil, fmt.Errorf("mount %s: %w", step.name, err)
		}
	}
	console, err := newConsole(root)
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	if err := failpoint.Check("pivot"); err != nil {
		return nil, err
	}
	if err := pivot(root); err != nil {
		console.Close()
		return nil, fmt.Errorf("pivot_root to %s: %w", spec.Rootfs, err)
	}
	return console, nil
}

// attachTree mounts the tree over the target and makes its root the working
// directory.
func attachTree(spec Spec) error {
	err := unix.MoveMount(int(spec.Tree.Fd()), "", int(spec.Target.Fd()), "",
		unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
	if err != nil {
		return fmt.Errorf("attach root filesystem at %s: %w", spec.Rootfs, err)
	}
	if err := unix.Fchdir(int(spec.Tree.Fd())); err != nil {
		return fmt.Errorf("enter root filesystem: %w", err)
	}
	return nil
}

// pivot makes root the container's / and detaches the host's tree entirely, so
// nothing of the host stays reachable.
func pivot(root string) error {
	oldRoot, err := unix.Open("/", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(oldRoot)
	newRoot, err := unix.Open(root, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(newRoot)
	if err := unix.Fchdir(newRoot); err != nil {
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
	return unix.Chdir("/")
}
