package monitor

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"lodge/internal/cgroup"
	"lodge/internal/store"
)

// RestoreStaging is where a restore of container name attaches what CRIU
// restores from (the root, the overlay's layers, the views' clones): see
// restoreSources.
func RestoreStaging(s *store.Store, name string) string {
	return filepath.Join(s.RunDir(), "restore", name)
}

// RemoveStaging detaches every mount at or below dir, deepest first, and
// then removes dir. It never removes through a mount: the staging holds the
// container's own root and layers (writable), and a removal that crossed
// into one would delete the container's files. A monitor killed during a
// restore leaves its staging mounted; the next start, restore, stop or
// delete (cleanupStale) calls this for it.
func RemoveStaging(dir string) error {
	for try := 0; ; try++ {
		mounts, err := mountsBelow(dir)
		if err != nil {
			return err
		}
		if len(mounts) == 0 {
			break
		}
		if try == 3 {
			return fmt.Errorf("restore staging %s: still mounted: %s", dir, strings.Join(mounts, ", "))
		}
		for _, m := range mounts {
			unix.Unmount(m, unix.MNT_DETACH)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("restore staging: %w", err)
	}
	return nil
}

// mountsBelow lists the mount points at or below dir in this mount
// namespace, deepest first (stacked mounts once each).
func mountsBelow(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	all, err := cgroup.ParseMountinfo(f)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, m := range all {
		if (m.Mountpoint == dir || strings.HasPrefix(m.Mountpoint, dir+"/")) && !seen[m.Mountpoint] {
			seen[m.Mountpoint] = true
			out = append(out, m.Mountpoint)
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out, nil
}
