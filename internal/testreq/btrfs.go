package testreq

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// LoopBtrfs makes a btrfs filesystem of size bytes in a sparse file, mounts
// it through a loop device of its own and returns the mount point. Its
// cleanups (unmount, detach) are registered before anything that uses the
// mount, so they run after all of theirs. The caller checks for root.
// Without mkfs.btrfs or a free loop device it skips for feature "btrfs".
// Shared by the storage package's tests and the end-to-end suite.
func LoopBtrfs(t testing.TB, size int64) string {
	t.Helper()
	if _, err := exec.LookPath("mkfs.btrfs"); err != nil {
		Skip(t, "btrfs", "mkfs.btrfs is missing (btrfs-progs; `make deps` installs it)")
	}
	img := filepath.Join(t.TempDir(), "btrfs.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.btrfs", "-q", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.btrfs: %v: %s", err, out)
	}
	out, err := exec.Command("losetup", "--find", "--show", img).CombinedOutput()
	if err != nil {
		Skipf(t, "btrfs", "no loop device for a btrfs file: losetup: %v: %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "--detach", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup --detach %s: %v: %s", dev, err, out)
		}
	})
	mnt := t.TempDir()
	if err := unix.Mount(dev, mnt, "btrfs", 0, ""); err != nil {
		t.Fatalf("mount %s (btrfs) on %s: %v", dev, mnt, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(mnt, 0); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
	})
	return mnt
}
