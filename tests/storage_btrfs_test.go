package tests

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"lodge/internal/testreq"
	"lodge/storage"

	"golang.org/x/sys/unix"
)

// mountLoopBtrfs mounts a fresh btrfs filesystem of size bytes on a loop
// device (testreq.LoopBtrfs), as root.
func mountLoopBtrfs(t *testing.T, size int64) string {
	t.Helper()
	requireRoot(t)
	return testreq.LoopBtrfs(t, size)
}

// btrfsSubvolumes lists every subvolume of the filesystem mounted at mnt.
func btrfsSubvolumes(t *testing.T, mnt string) []string {
	t.Helper()
	out, err := exec.Command("btrfs", "subvolume", "list", mnt).CombinedOutput()
	if err != nil {
		t.Fatalf("btrfs subvolume list %s: %v: %s", mnt, err, out)
	}
	var paths []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			paths = append(paths, f[len(f)-1])
		}
	}
	return paths
}

// TestBtrfsBackendEndToEnd: a lodge root on btrfs with storage.backend =
// auto gets the btrfs backend (the image cache stays on ext4); a busybox
// container's root filesystem is a subvolume, starts on an idmapped mount of
// it, keeps what exec wrote (with natural ids on disk) across a restart, and
// its delete leaves no subvolume but the image's base.
func TestBtrfsBackendEndToEnd(t *testing.T) {
	mnt := mountLoopBtrfs(t, 1<<30)
	e := btrfsRootEnv(t, mnt)

	e.createBusybox("bt1")
	dir := filepath.Join(e.root, "containers", "bt1")
	var rec struct{ Backend, Image string }
	data, err := os.ReadFile(filepath.Join(dir, "storage.json"))
	if err != nil || json.Unmarshal(data, &rec) != nil || rec.Backend != "btrfs" {
		t.Fatalf("storage.json = %s (%v), want the btrfs backend", data, err)
	}
	rootfs := filepath.Join(dir, "rootfs")
	var st unix.Stat_t
	if err := unix.Stat(rootfs, &st); err != nil || st.Ino != 256 {
		t.Fatalf("%s: inode %d (%v), want a subvolume (inode 256)", rootfs, st.Ino, err)
	}
	if subs := btrfsSubvolumes(t, mnt); len(subs) != 2 {
		t.Fatalf("subvolumes after create: %v, want the image's base and the container's", subs)
	}

	e.must("start", "bt1")
	e.must("exec", "bt1", "--", "sh", "-c", "echo kept > /etc/btrfs-test")
	// Written as root inside through the idmapped mount: uid 0 on disk.
	if err := unix.Stat(filepath.Join(rootfs, "etc/btrfs-test"), &st); err != nil || st.Uid != 0 {
		t.Errorf("the file exec wrote: uid %d (%v), want 0 on disk", st.Uid, err)
	}
	checkLimitInside(t, e, "bt1", rootfs)
	e.must("stop", "bt1")
	e.must("start", "bt1")
	if got := e.must("exec", "bt1", "--", "cat", "/etc/btrfs-test"); got != "kept\n" {
		t.Errorf("after a restart the file reads %q", got)
	}
	e.must("stop", "bt1")
	e.must("delete", "bt1")
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Errorf("container directory left after delete: %v", err)
	}
	subs := btrfsSubvolumes(t, mnt)
	if len(subs) != 1 || !strings.HasPrefix(subs[0], "lodge/storage/btrfs/images/") {
		t.Errorf("subvolumes after delete: %v, want only the image's base", subs)
	}
}

// checkLimitInside sets a 20 MiB qgroup limit on the running container's
// tree: writing 40 MiB inside fails with "Disk quota exceeded" (EDQUOT, what
// btrfs returns, not ENOSPC), and removing the limit lets the write through.
// What `df /` shows inside is logged: the whole filesystem, since btrfs has
// no per-subvolume statfs.
func checkLimitInside(t *testing.T, e *env, name, rootfs string) {
	t.Helper()
	b, err := storage.New(storage.BtrfsName, e.root)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := b.SetQuota(ctx, rootfs, 20<<20); err != nil {
		t.Fatal(err)
	}
	fill := []string{"exec", name, "--", "sh", "-c", "dd if=/dev/zero of=/fill bs=1M count=40 && sync /fill"}
	r := e.run(fill...)
	if r.code == 0 || !strings.Contains(r.stderr+r.stdout, "quota exceeded") {
		t.Errorf("writing 40 MiB past a 20 MiB limit inside: %s; want a failure with Disk quota exceeded", r)
	}
	t.Logf("past the limit inside: %s", strings.TrimSpace(r.stderr))
	t.Logf("df / inside with a 20 MiB limit:\n%s", e.must("exec", name, "--", "df", "/"))
	if err := b.SetQuota(ctx, rootfs, 0); err != nil {
		t.Fatal(err)
	}
	e.must(fill...)
	e.must("exec", name, "--", "rm", "/fill")
}
