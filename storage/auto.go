package storage

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Choice is the backend Choose picked and why, for `lodge info`-style
// reports and for the message a user sees when auto surprises them.
type Choice struct {
	Backend string
	Reason  string
}

// Choose returns the backend new containers get under the lodge root root:
// the named one (checked to exist), or for "auto" (or "") the best this
// host can run: btrfs when root lives on btrfs, else overlay where the
// kernel mounts it in a user namespace, else dir.
func Choose(name, root string) (Choice, error) {
	if name != "" && name != "auto" {
		if _, err := New(name, root); err != nil {
			return Choice{}, err
		}
		return Choice{Backend: name, Reason: "storage.backend in the host config"}, nil
	}
	var st unix.Statfs_t
	if err := unix.Statfs(root, &st); err != nil {
		return Choice{}, fmt.Errorf("choose a storage backend for %s: %w", root, err)
	}
	var notBtrfs string // why a root on btrfs does not get the btrfs backend
	if st.Type == unix.BTRFS_SUPER_MAGIC && registered(btrfsName) {
		err := btrfsSupported(root)
		if err == nil {
			return Choice{Backend: btrfsName, Reason: root + " is on btrfs"}, nil
		}
		notBtrfs = fmt.Sprintf("%s is on btrfs, but the btrfs backend cannot run (%v); ", root, err)
	}
	if registered(overlayName) {
		if err := overlaySupported(); err != nil {
			return Choice{Backend: DirName, Reason: notBtrfs + fmt.Sprintf("overlay cannot be used here (%v)", err)}, nil
		}
		if err := overlayUpperFS(st.Type); err != nil {
			return Choice{Backend: DirName, Reason: notBtrfs + fmt.Sprintf("overlay cannot be used on %s (%v)", root, err)}, nil
		}
		return Choice{Backend: overlayName, Reason: notBtrfs + "the kernel mounts overlay in a user namespace"}, nil
	}
	return Choice{Backend: DirName, Reason: notBtrfs + "no copy-on-write backend is available"}, nil
}

// The names auto considers, before their backends exist in this package.
const (
	btrfsName   = "btrfs"
	overlayName = "overlay"
)

// overlaySupported says whether the overlay backend can run on this kernel:
// overlayfs must exist and take its layers one by one ("lowerdir+", Linux
// 6.8, which the container's process uses with descriptors), and user
// namespaces must be allowed (the container mounts the overlay as its root,
// with userxattr: Linux 5.11). The probe opens an overlay context and sets
// one lower, mounting nothing.
func overlaySupported() error {
	fs, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("the kernel has no overlay filesystem: %w", err)
	}
	defer unix.Close(fs)
	if err := unix.FsconfigSetString(fs, "lowerdir+", "/"); err != nil {
		return fmt.Errorf("the kernel's overlayfs lacks the lowerdir+ option (Linux 6.8 or newer needed): %w", err)
	}
	if err := unix.FsconfigSetFlag(fs, "userxattr"); err != nil {
		return fmt.Errorf("the kernel's overlayfs lacks the userxattr option (Linux 5.11 or newer needed): %w", err)
	}
	data, err := os.ReadFile("/proc/sys/user/max_user_namespaces")
	if err == nil && strings.TrimSpace(string(data)) == "0" {
		return fmt.Errorf("user namespaces are disabled (user.max_user_namespaces = 0)")
	}
	return nil
}

// overlayUpperFS says whether a filesystem of type fsType can hold overlay
// uppers that the container mounts through idmapped mounts: it must support
// idmapped mounts and user.* xattrs (userxattr), which the local filesystems
// below do; overlayfs itself, FUSE and network filesystems do not.
func overlayUpperFS(fsType int64) error {
	switch fsType {
	case unix.EXT4_SUPER_MAGIC, unix.XFS_SUPER_MAGIC, unix.BTRFS_SUPER_MAGIC, unix.TMPFS_MAGIC, unix.F2FS_SUPER_MAGIC:
		return nil
	}
	return fmt.Errorf("its filesystem (type %#x) cannot hold idmapped overlay layers; ext4, xfs, btrfs, f2fs or tmpfs can", fsType)
}

func registered(name string) bool {
	registryMu.Lock()
	defer registryMu.Unlock()
	_, ok := registry[name]
	return ok
}
