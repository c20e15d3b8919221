package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"lodge/internal/failpoint"
)

// A Stage is where the host builds the part of a container's mount tree that
// the container must not undo: the root filesystem with its nodev flag, /proc
// with its masks and read-only binds, read-only /sys, the cgroup filesystems.
//
// The kernel locks mounts that reach a mount namespace owned by a less
// privileged user namespace (mount_namespaces(7)): mounts propagated there
// from a namespace of another owner arrive with their flags (ro, nodev,
// nosuid, noexec) locked and their submounts locked to their parents (they
// cannot be unmounted or moved to reveal what they cover). Mounts a process
// makes inside the container's own user namespace are not locked, which is
// how container root could unmount the masks before.
//
// So the stage is a thread of the monitor in a private copy of the host's mount
// namespace (still owned by the host's user namespace), holding a shared
// mount point, "s". The container's first process is cloned from this thread,
// so its new mount namespace has a copy of "s" that receives propagation.
// The tree is built at a private place, "b", and then moved under "s" in one
// step: it reaches the container whole, with every mount below its root
// locked, and pivot_root makes the root locked too. Nothing of this is
// visible on the host; the stage's namespace dies with its thread.
//
//	monitor thread (host userns, private mntns)    container's first process
//	mount tmpfs X at DIR; bind X/s shared
//	clone ---------------------------------------> copy of X/s (a slave)
//	                                               <- proc, sysfs, cgroupfs (detached)
//	attach rootfs tree at X/b, proc + masks,
//	sys, cgroups below it; move X/b to X/s  -----> the tree appears at DIR/s, locked
//	                                               pivot_root into it
type Stage struct {
	dir string // where the stage's tmpfs is mounted in its namespace
}

// EnterStage makes the calling thread a stage whose tmpfs covers dir (a
// directory that nothing else uses; it is created if missing, and stays empty
// on the host). The caller must have locked its goroutine to the thread
// (runtime.LockOSThread) and must let the goroutine end without unlocking it:
// the thread then exits, and the stage's mount namespace with it. Everything
// the thread does afterwards sees the stage's namespace, the same as the
// host's but for dir.
func EnterStage(dir string) (*Stage, error) {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, err
	}
	s := &Stage{dir: dir}
	if err := s.setup(); err != nil {
		return nil, fmt.Errorf("prepare the mount namespace for the container's mounts: %w", err)
	}
	return s, nil
}

func (s *Stage) setup() error {
	// A thread can have a mount namespace of its own (unshare gives it its own
	// fs_struct too); nothing it mounts reaches the host.
	if err := unix.Unshare(unix.CLONE_NEWNS | unix.CLONE_FS); err != nil {
		return fmt.Errorf("new mount namespace: %w", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	x, err := newMount("tmpfs", "mode=700,size=16k", kernelFSAttrs)
	if err != nil {
		return err
	}
	defer unix.Close(x)
	for _, d := range []string{"b", "s"} {
		if err := unix.Mkdirat(x, d, 0o700); err != nil {
			return err
		}
	}
	// The container's first process (container root, not host root) looks
	// up the overlay layers in "l" (see AttachLayer): searchable, not listable.
	if err := unix.Mkdirat(x, "l", 0o711); err != nil {
		return err
	}
	if err := unix.Fchmodat(x, "l", 0o711, 0); err != nil {
		return err
	}
	if err := unix.MoveMount(x, "", unix.AT_FDCWD, s.dir, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("mount the stage on %s: %w", s.dir, err)
	}
	// "s" receives the finished tree, "l" the overlay layers the container
	// mounts its root from (AttachLayer).
	for _, d := range []string{"s", "l"} {
		shared := filepath.Join(s.dir, d)
		if err := unix.Mount(shared, shared, "", unix.MS_BIND, ""); err != nil {
			return err
		}
		if err := unix.Mount("", shared, "", unix.MS_SHARED, ""); err != nil {
			return err
		}
	}
	return nil
}

// LayerDir is the shared mount point below which AttachLayer attaches the
// layers, as a path in the namespaces cloned from the stage.
func (s *Stage) LayerDir() string { return filepath.Join(s.dir, "l") }

// AttachLayer attaches the detached layer mount (an idmapped overlay layer)
// as name below the stage's second shared mount point and returns its path.
// The copy that propagates to the container's mount namespace belongs to
// that namespace, so the container's first process may build an overlay
// from it (overlay refuses the host's detached mounts), and it arrives with
// its flags locked: container root cannot make a read-only layer writable.
// See docs/storage-overlay.md.
func (s *Stage) AttachLayer(layer *os.File, name string) (string, error) {
	path := filepath.Join(s.dir, "l", name)
	if err := os.Mkdir(path, 0o700); err != nil {
		return "", err
	}
	if err := unix.MoveMount(int(layer.Fd()), "", unix.AT_FDCWD, path, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return "", fmt.Errorf("attach overlay layer %s: %w", layer.Name(), err)
	}
	return path, nil
}

// SharedDir is the shared mount point, as a path in the namespaces cloned
// from the stage: the container's locked tree appears there.
func (s *Stage) SharedDir() string { return filepath.Join(s.dir, "s") }

// Build attaches the root filesystem tree and the kernel filesystems with
// their masks and read-only mounts, then hands the whole tree to the
// container's mount namespace (see Stage). It runs on the stage's thread.
func (s *Stage) Build(tree *os.File, k *KernelFS, l Locked) error {
	if err := failpoint.Check("mount-rootfs"); err != nil {
		return err
	}
	build := filepath.Join(s.dir, "b")
	if err := unix.MoveMount(int(tree.Fd()), "", unix.AT_FDCWD, build, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("attach the root filesystem: %w", err)
	}
	if err := mountLocked(int(tree.Fd()), k, l); err != nil {
		return err
	}
	if err := unix.MoveMount(unix.AT_FDCWD, build, unix.AT_FDCWD, s.SharedDir(), 0); err != nil {
		return fmt.Errorf("hand the mount tree to the container: %w", err)
	}
	return nil
}
