package storage

import (
	"fmt"

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
		if err := overlaySupported(); err == nil {
			return Choice{Backend: overlayName, Reason: notBtrfs + "the kernel mounts overlay in a user namespace"}, nil
		} else {
			return Choice{Backend: DirName, Reason: notBtrfs + fmt.Sprintf("overlay cannot be used here (%v)", err)}, nil
		}
	}
	return Choice{Backend: DirName, Reason: notBtrfs + "no copy-on-write backend is available"}, nil
}

// The names auto considers, before their backends exist in this package.
const (
	btrfsName   = "btrfs"
	overlayName = "overlay"
)

// overlaySupported says whether the overlay backend can run on this kernel;
// replaced by the overlay backend's own check.
var overlaySupported = func() error { return nil }

func registered(name string) bool {
	registryMu.Lock()
	defer registryMu.Unlock()
	_, ok := registry[name]
	return ok
}
