package rootfs

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"lodge/internal/failpoint"
)

const kernelFSAttrs = unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOEXEC

// /proc entries that stay visible but read-only: writing them would reach the
// host kernel (sysctls outside the container's own namespaces, sysrq, irq
// affinity, bus devices).
var procReadOnly = []string{"sys", "sysrq-trigger", "irq", "bus", "fs"}

// /proc entries that are hidden: they leak host memory, keys or timing details.
var procMaskedFiles = []string{"kcore", "keys", "latency_stats", "timer_list", "timer_stats", "sched_debug"}
var procMaskedDirs = []string{"acpi", "scsi"}

// /proc/sys/net belongs to the container's own network namespace, so it stays writable.
const procSysNet = "sys/net"

// KernelFS are the container's proc, sysfs and cgroup filesystems as detached
// mounts. Only the container's first process can create them (proc shows the
// pid namespace of its creator, sysfs the network namespace, cgroupfs the
// cgroup namespace), but they are attached by the host in a mount namespace
// of its own (see Stage), so that the container cannot undo the masks and
// read-only mounts over them.
type KernelFS struct {
	Proc    *os.File
	Sys     *os.File
	Cgroups []*os.File // one per CgroupMount, in order
}

// NewKernelFS creates the kernel filesystems in the calling process's
// namespaces; the cgroup namespace must already be the container's.
func NewKernelFS(cgroups []CgroupMount) (*KernelFS, error) {
	k := &KernelFS{}
	proc, err := newMount("proc", "", kernelFSAttrs)
	if err != nil {
		return nil, err
	}
	k.Proc = fileOf(proc, "proc")
	sys, err := newMount("sysfs", "", kernelFSAttrs|unix.MOUNT_ATTR_RDONLY)
	if err != nil {
		k.Close()
		return nil, err
	}
	k.Sys = fileOf(sys, "sysfs")
	for _, m := range cgroups {
		fd, err := newMount(m.FSType, m.Data, kernelFSAttrs)
		if err != nil {
			k.Close()
			return nil, err
		}
		k.Cgroups = append(k.Cgroups, fileOf(fd, m.FSType))
	}
	return k, nil
}

// Files lists the descriptors, to send them: proc, sysfs, then the cgroups.
func (k *KernelFS) Files() []*os.File {
	return append([]*os.File{k.Proc, k.Sys}, k.Cgroups...)
}

// KernelFSFromFiles is the inverse of Files.
func KernelFSFromFiles(files []*os.File, cgroups int) (*KernelFS, error) {
	if len(files) != 2+cgroups {
		return nil, fmt.Errorf("expected %d kernel filesystems, got %d", 2+cgroups, len(files))
	}
	return &KernelFS{Proc: files[0], Sys: files[1], Cgroups: files[2:]}, nil
}

// Close closes the descriptors (the mounts, once attached, stay).
func (k *KernelFS) Close() {
	for _, f := range k.Files() {
		if f != nil {
			f.Close()
		}
	}
}

// Locked is what the host mounts on the stage besides the kernel filesystems.
type Locked struct {
	Cgroups []CgroupMount
	Views   []View // opened in the stage's mount namespace
	Owner   int    // host uid (and gid) of the container's root
	// BootIDFile is the host file that holds the boot's id, bound over
	// /proc/sys/kernel/random/boot_id (see bindBootID); "": the host's id.
	BootIDFile string
}

// mountLocked attaches the kernel filesystems in the tree at root with their
// masks, read-only binds, views and boot id. It runs in the stage's mount
// namespace, owned by the host's user namespace, so that all of it arrives
// locked in the container's (see Stage).
//
// Nothing below /proc is left unlocked: systemd's ProtectProc= (networkd and
// logind in Debian 12) unmounts what it can below /proc before it mounts a
// new proc, and when that mount is refused (lodge's /proc is not "fully
// visible", its masks being locked) it falls back to the existing /proc only
// if it unmounted nothing.
func mountLocked(root int, k *KernelFS, l Locked) error {
	steps := []struct {
		name string
		run  func() error
	}{
		{"proc", func() error { return mountProc(root, k.Proc) }},
		{"sys", func() error { return attachAt(int(k.Sys.Fd()), root, "sys") }},
		{"cgroup", func() error { return mountCgroups(int(k.Sys.Fd()), k.Cgroups, l.Cgroups, l.Owner) }},
		{"views", func() error { return bindViews(root, l.Views) }},
		{"bootid", func() error { return bindBootID(root, l.BootIDFile, l.Owner) }},
	}
	for _, step := range steps {
		if err := failpoint.Check("mount-" + step.name); err != nil {
			return err
		}
		if err := step.run(); err != nil {
			return fmt.Errorf("mount %s: %w", step.name, err)
		}
	}
	return nil
}

func mountProc(root int, procMount *os.File) error {
	if err := attachAt(int(procMount.Fd()), root, "proc"); err != nil {
		return err
	}
	// The mount's descriptor is now the root of the attached /proc.
	proc := int(procMount.Fd())
	for _, name := range procReadOnly {
		if err := bindSelf(proc, name, unix.MOUNT_ATTR_RDONLY, 0, true); err != nil {
			return err
		}
	}
	if err := bindSelf(proc, procSysNet, 0, unix.MOUNT_ATTR_RDONLY, false); err != nil {
		return err
	}
	for _, name := range procMaskedFiles {
		if err := maskFile(proc, name); err != nil {
			return err
		}
	}
	for _, name := range procMaskedDirs {
		if err := maskDir(proc, name); err != nil {
			return err
		}
	}
	return nil
}

// bindSelf binds name below dir over itself with changed flags; a name the
// kernel does not have is skipped.
func bindSelf(dir int, name string, set, clear uint64, recursive bool) error {
	target, err := openRaw(dir, name, false)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open /proc/%s: %w", name, err)
	}
	defer unix.Close(target)
	mnt, err := cloneMount(target, "", recursive)
	if err != nil {
		return err
	}
	defer unix.Close(mnt)
	if err := setAttrs(mnt, set, clear, recursive); err != nil {
		return fmt.Errorf("set flags of /proc/%s: %w", name, err)
	}
	if err := attach(mnt, target); err != nil {
		return fmt.Errorf("bind /proc/%s: %w", name, err)
	}
	return nil
}

// maskFile hides a /proc file behind the host's /dev/null.
func maskFile(proc int, name string) error {
	target, err := openRaw(proc, name, false)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open /proc/%s: %w", name, err)
	}
	defer unix.Close(target)
	null, err := cloneMount(unix.AT_FDCWD, "/dev/null", false)
	if err != nil {
		return err
	}
	defer unix.Close(null)
	if err := attach(null, target); err != nil {
		return fmt.Errorf("mask /proc/%s: %w", name, err)
	}
	return nil
}

// maskDir hides a /proc directory behind an empty read-only tmpfs.
func maskDir(proc int, name string) error {
	target, err := openRaw(proc, name, true)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open /proc/%s: %w", name, err)
	}
	defer unix.Close(target)
	empty, err := newMount("tmpfs", "size=0,mode=555", kernelFSAttrs|unix.MOUNT_ATTR_RDONLY)
	if err != nil {
		return err
	}
	defer unix.Close(empty)
	if err := attach(empty, target); err != nil {
		return fmt.Errorf("mask /proc/%s: %w", name, err)
	}
	return nil
}

// mountCgroups attaches the container's cgroup filesystems under
// /sys/fs/cgroup (sys is the attached sysfs). With a cgroup namespace, each
// shows the container's own cgroup as its root. On hybrid and v1 hosts they
// sit on a read-only tmpfs, the layout systemd expects.
func mountCgroups(sys int, mounts []*os.File, specs []CgroupMount, owner int) error {
	base, err := openInTree(sys, "fs/cgroup", true)
	if err != nil {
		return err
	}
	defer unix.Close(base)
	if len(specs) == 1 && specs[0].Target == "" {
		return attach(int(mounts[0].Fd()), base)
	}
	opts := fmt.Sprintf("mode=755,size=64k,uid=%d,gid=%d", owner, owner)
	tmp, err := newMount("tmpfs", opts, kernelFSAttrs)
	if err != nil {
		return err
	}
	defer unix.Close(tmp)
	if err := attach(tmp, base); err != nil {
		return fmt.Errorf("mount tmpfs on /sys/fs/cgroup: %w", err)
	}
	for i, m := range specs {
		if err := unix.Mkdirat(tmp, m.Target, 0o755); err != nil {
			return fmt.Errorf("create /sys/fs/cgroup/%s: %w", m.Target, err)
		}
		unix.Fchownat(tmp, m.Target, owner, owner, unix.AT_SYMLINK_NOFOLLOW)
		if err := attachAt(int(mounts[i].Fd()), tmp, m.Target); err != nil {
			return err
		}
		for _, link := range m.Symlinks {
			if err := unix.Symlinkat(m.Target, tmp, link); err != nil {
				return fmt.Errorf("link /sys/fs/cgroup/%s: %w", link, err)
			}
			unix.Fchownat(tmp, link, owner, owner, unix.AT_SYMLINK_NOFOLLOW)
		}
	}
	if err := setAttrs(tmp, unix.MOUNT_ATTR_RDONLY, 0, false); err != nil {
		return fmt.Errorf("make /sys/fs/cgroup read-only: %w", err)
	}
	return nil
}

// mountRun gives init an empty tmpfs /run carrying /run/systemd/container, as
// systemd's Container Interface describes; init systems other than systemd
// find it there as well.
func mountRun(root int) error {
	run, err := newMount("tmpfs", "mode=755", unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV)
	if err != nil {
		return err
	}
	defer unix.Close(run)
	if err := attachAt(run, root, "run"); err != nil {
		return err
	}
	if err := unix.Mkdirat(run, "systemd", 0o755); err != nil {
		return err
	}
	sd, err := openRaw(run, "systemd", true)
	if err != nil {
		return err
	}
	defer unix.Close(sd)
	return writeFileAt(sd, "container", []byte(ContainerManager+"\n"), 0o444)
}

// ContainerManager is the value of $container and /run/systemd/container.
const ContainerManager = "lodge"

// bindBootID gives each boot of the container its own boot id. The kernel's
// /proc/sys/kernel/random/boot_id is the host's, so every container boot
// within one host boot would share it, and journalctl -b could not tell them
// apart. A fresh random id is written to file (a host path, see
// store.BootIDPath), replacing the previous boot's, and bound read-only over
// it. A real file, not an unlinked one: CRIU dumps the bind as an external
// mount and binds the same file again at restore (a bind of an unlinked or
// unreachable file comes back empty); whoever removes the container's
// runtime files removes it.
func bindBootID(root int, file string, owner int) error {
	if file == "" {
		return nil
	}
	target, err := openRaw(root, "proc/sys/kernel/random/boot_id", false)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open /proc/sys/kernel/random/boot_id: %w", err)
	}
	defer unix.Close(target)
	id, err := randomUUID()
	if err != nil {
		return err
	}
	if err := WriteBootID(file, id, owner); err != nil {
		return err
	}
	src, err := unix.Open(file, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open the boot id file: %w", err)
	}
	defer unix.Close(src)
	return bindOnto(src, target, "/proc/sys/kernel/random/boot_id", unix.MOUNT_ATTR_RDONLY|kernelFSAttrs, 0)
}

// WriteBootID writes a container's boot id file anew (mode 0444, owned by
// the container's root, host uid owner): a new boot's id, or, before a
// restore, the id of the boot that was checkpointed. A file left there by an
// earlier boot is replaced, not rewritten: a mount of it stays as it was.
func WriteBootID(file, id string, owner int) error {
	if err := os.Remove(file); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("replace the boot id file: %w", err)
	}
	f, err := os.OpenFile(file, os.O_CREATE|os.O_EXCL|os.O_WRONLY|unix.O_NOFOLLOW, 0o444)
	if err != nil {
		return fmt.Errorf("write the boot id file: %w", err)
	}
	_, err = f.WriteString(id + "\n")
	if err == nil {
		err = f.Chown(owner, owner)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(file)
		return fmt.Errorf("write the boot id file: %w", err)
	}
	return nil
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
// The sources are descriptors the host opened in this mount namespace. After
// a restart of the views server, it mounts fresh ones over these (they cannot
// be unmounted, being locked).
func bindViews(root int, views []View) error {
	for _, v := range views {
		target, err := openRaw(root, v.Target, false)
		if errors.Is(err, unix.ENOENT) {
			continue // the kernel lacks it (no /sys/devices/system/cpu, say)
		}
		if err != nil {
			return fmt.Errorf("open %s: %w", v.Target, err)
		}
		err = bindOnto(int(v.Source.Fd()), target, v.Target,
			unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV, 0)
		unix.Close(target)
		if err != nil {
			return fmt.Errorf("bind the view of %s: %w", v.Target, err)
		}
	}
	return nil
}
