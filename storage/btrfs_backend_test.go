package storage

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// btrfsRoot mounts a fresh btrfs filesystem and returns a lodge root on it
// with ROOT/containers, and the btrfs backend for it.
func btrfsRoot(t *testing.T) (root string, b *Btrfs) {
	t.Helper()
	mnt := mountBtrfs(t, 512<<20)
	root = filepath.Join(mnt, "lodge")
	if err := os.MkdirAll(filepath.Join(root, "containers"), 0o700); err != nil {
		t.Fatal(err)
	}
	be, err := New(BtrfsName, root)
	if err != nil {
		t.Fatal(err)
	}
	return root, be.(*Btrfs)
}

// testImage makes an image directory off btrfs (the shared cache is on
// ext4 in real use), with the usual tree and an 8 MiB file of random data.
func testImage(t *testing.T) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "debian-test", "rootfs")
	if err := os.MkdirAll(img, 0o755); err != nil {
		t.Fatal(err)
	}
	if onBtrfs(img) {
		t.Fatalf("the test image %s should be off btrfs", img)
	}
	makeTree(t, img)
	big := make([]byte, 8<<20)
	rand.Read(big)
	if err := os.WriteFile(filepath.Join(img, "big"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	return img
}

// containerDir makes ROOT/containers/NAME and returns it.
func containerDir(t *testing.T, root, name string) string {
	t.Helper()
	dir := filepath.Join(root, "containers", name)
	if err := os.MkdirAll(filepath.Join(dir, "snapshots"), 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

// subvolumes lists the subvolumes of the filesystem mounted above root,
// as `btrfs subvolume list` sees them (a cross-check of the ioctls).
func subvolumes(t *testing.T, root string) []string {
	t.Helper()
	out, err := exec.Command("btrfs", "subvolume", "list", filepath.Dir(root)).CombinedOutput()
	if err != nil {
		t.Fatalf("btrfs subvolume list: %v: %s", err, out)
	}
	var paths []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			paths = append(paths, f[len(f)-1])
		}
	}
	return paths
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestBtrfsOps runs every operation once: create from an image on another
// filesystem (through one read-only base), both kinds of clone, a read-only
// snapshot, restore, usage and delete.
func TestBtrfsOps(t *testing.T) {
	root, b := btrfsRoot(t)
	ctx := context.Background()
	img := testImage(t)
	c1 := filepath.Join(containerDir(t, root, "c1"), "rootfs")
	c2 := filepath.Join(containerDir(t, root, "c2"), "rootfs")
	var last Progress
	if err := b.Create(ctx, img, c1, Options{Progress: func(p Progress) { last = p }}); err != nil {
		t.Fatal(err)
	}
	if last.Files != last.TotalFiles || last.TotalFiles == 0 {
		t.Errorf("first create: progress ended at %+v", last)
	}
	if err := b.Create(ctx, img, c2, Options{}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{c1, c2} {
		if !isSubvolume(p) {
			t.Errorf("%s is not a subvolume", p)
		}
		compareTrees(t, img, p)
	}
	bases, _ := os.ReadDir(b.imagesDir())
	var names []string
	for _, e := range bases {
		names = append(names, e.Name())
	}
	if len(names) != 2 || !strings.HasPrefix(names[1], "debian-test-") || !isSubvolume(filepath.Join(b.imagesDir(), names[1])) {
		t.Fatalf("images dir holds %v, want one lock and one base subvolume debian-test-*", names)
	}
	if err := os.WriteFile(filepath.Join(b.imagesDir(), names[1], "x"), nil, 0o644); !errors.Is(err, unix.EROFS) {
		t.Errorf("writing into the base: %v, want EROFS", err)
	}
	if err := b.Create(ctx, img, c1, Options{}); !errors.Is(err, unix.EEXIST) {
		t.Errorf("create over an existing tree: %v, want EEXIST", err)
	}

	writeFile(t, filepath.Join(c1, "etc/hostname"), "c1\n")
	for _, cow := range []bool{true, false} {
		dst := filepath.Join(containerDir(t, root, fmt.Sprintf("clone-%v", cow)), "rootfs")
		if err := b.Clone(ctx, c1, dst, Options{CopyOnWrite: cow}); err != nil {
			t.Fatal(err)
		}
		compareTrees(t, c1, dst)
		writeFile(t, filepath.Join(dst, "etc/hostname"), "clone\n")
		if got := readFile(t, filepath.Join(c1, "etc/hostname")); got != "c1\n" {
			t.Errorf("writing to a clone changed its source: %q", got)
		}
		if err := b.Delete(ctx, dst); err != nil {
			t.Fatal(err)
		}
	}

	snap := filepath.Join(containerDir(t, root, "c1"), "snapshots", "s1", "rootfs")
	os.Mkdir(filepath.Dir(snap), 0o700)
	if err := b.Snapshot(ctx, c1, snap, Options{}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(snap, "etc/hostname"), nil, 0o644); !errors.Is(err, unix.EROFS) {
		t.Errorf("writing into a snapshot: %v, want EROFS", err)
	}
	writeFile(t, filepath.Join(c1, "etc/hostname"), "changed\n")
	os.Remove(filepath.Join(c1, "big"))
	if err := b.Restore(ctx, snap, c1, Options{}); err != nil {
		t.Fatal(err)
	}
	compareTrees(t, snap, c1)
	writeFile(t, filepath.Join(c1, "after-restore"), "writable") // restored tree is writable

	u, err := b.Usage(ctx, c1)
	if err != nil || u.Bytes < 8<<20 {
		t.Errorf("usage of c1 without quotas: %+v, %v; want at least the 8 MiB file", u, err)
	}
	for _, p := range []string{snap, c1, c2} {
		if err := b.Delete(ctx, p); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still exists after delete: %v", p, err)
		}
		if err := b.Delete(ctx, p); err != nil {
			t.Errorf("deleting a missing tree: %v", err)
		}
	}
	assertNoTemp(t, filepath.Join(root, "containers", "c1"))
	if subs := subvolumes(t, root); len(subs) != 1 || !strings.Contains(subs[0], "storage/btrfs/images/debian-test-") {
		t.Errorf("after deleting every tree, subvolumes left: %v, want only the base", subs)
	}
}

// TestBtrfsCreateAndCloneShareEverything proves creates and clones copy no
// data: FIEMAP marks every extent of the 8 MiB file shared, and the qgroup
// of each new subvolume holds (almost) no exclusive bytes while it refers
// to all of them.
func TestBtrfsCreateAndCloneShareEverything(t *testing.T) {
	root, b := btrfsRoot(t)
	ctx := context.Background()
	img := testImage(t)
	c1 := filepath.Join(containerDir(t, root, "c1"), "rootfs")
	c2 := filepath.Join(containerDir(t, root, "c2"), "rootfs")
	if err := b.Create(ctx, img, c1, Options{}); err != nil {
		t.Fatal(err)
	}
	// Quotas on (a limit far above what is used) so qgroup numbers exist.
	if err := b.SetQuota(ctx, c1, 1<<40); err != nil {
		t.Fatal(err)
	}
	if err := b.Clone(ctx, c1, c2, Options{CopyOnWrite: true}); err != nil {
		t.Fatal(err)
	}
	c3 := filepath.Join(containerDir(t, root, "c3"), "rootfs")
	if err := b.Create(ctx, img, c3, Options{}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{c1, c2, c3} {
		shared, total := sharedBytes(t, filepath.Join(p, "big"))
		if total < 8<<20 || shared != total {
			t.Errorf("%s/big: %d of %d bytes shared, want all of 8 MiB", p, shared, total)
		}
		syncFS(p)
		q, ok, err := readQgroup(p)
		if err != nil || !ok {
			t.Fatalf("qgroup of %s: ok=%v %v", p, ok, err)
		}
		// Exclusive: the subvolume's own metadata blocks, a few 16 KiB nodes.
		if q.referenced < 8<<20 || q.exclusive > 1<<20 {
			t.Errorf("%s: qgroup referenced %d, exclusive %d; want >= 8 MiB and <= 1 MiB", p, q.referenced, q.exclusive)
		}
		u, err := b.Usage(ctx, p)
		if err != nil || u.Bytes != q.referenced {
			t.Errorf("usage of %s: %+v, %v; want the qgroup's %d referenced bytes", p, u, err, q.referenced)
		}
	}
}

// TestBtrfsSnapshotsRestoreInAnyOrder: five snapshots of a counter; each
// restore brings its value back and keeps every snapshot, newer ones too,
// and the tree's disk limit.
func TestBtrfsSnapshotsRestoreInAnyOrder(t *testing.T) {
	root, b := btrfsRoot(t)
	ctx := context.Background()
	dir := containerDir(t, root, "c")
	rootfs := filepath.Join(dir, "rootfs")
	if err := b.Create(ctx, testImage(t), rootfs, Options{}); err != nil {
		t.Fatal(err)
	}
	if err := b.SetQuota(ctx, rootfs, 100<<20); err != nil {
		t.Fatal(err)
	}
	snap := func(i int) string { return filepath.Join(dir, "snapshots", strconv.Itoa(i), "rootfs") }
	for i := 1; i <= 5; i++ {
		writeFile(t, filepath.Join(rootfs, "counter"), strconv.Itoa(i))
		os.MkdirAll(filepath.Dir(snap(i)), 0o700)
		if err := b.Snapshot(ctx, rootfs, snap(i), Options{}); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(rootfs, "counter"), "6")
	for _, i := range []int{3, 5, 1, 4, 2, 5} {
		if err := b.Restore(ctx, snap(i), rootfs, Options{}); err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, filepath.Join(rootfs, "counter")); got != strconv.Itoa(i) {
			t.Fatalf("after restoring snapshot %d the counter is %s", i, got)
		}
		for j := 1; j <= 5; j++ {
			if got := readFile(t, filepath.Join(snap(j), "counter")); got != strconv.Itoa(j) {
				t.Fatalf("after restoring %d, snapshot %d holds %s", i, j, got)
			}
		}
		if q, ok, err := readQgroup(rootfs); err != nil || !ok || q.maxReferenced != 100<<20 {
			t.Fatalf("after restoring %d the tree's limit is %d (ok=%v, %v), want 100 MiB", i, q.maxReferenced, ok, err)
		}
		writeFile(t, filepath.Join(rootfs, "counter"), "changed")
	}
	assertNoTemp(t, dir)
}

// TestBtrfsDeleteNestedSubvolumes: a tree holding subvolumes (as systemd
// makes on a btrfs root), one of them read-only and one nested two deep,
// is deleted whole, leaving no subvolume behind.
func TestBtrfsDeleteNestedSubvolumes(t *testing.T) {
	root, b := btrfsRoot(t)
	ctx := context.Background()
	rootfs := filepath.Join(containerDir(t, root, "c"), "rootfs")
	if err := b.Create(ctx, testImage(t), rootfs, Options{}); err != nil {
		t.Fatal(err)
	}
	machines := filepath.Join(rootfs, "var/lib/machines")
	os.MkdirAll(filepath.Dir(machines), 0o755)
	for _, p := range []string{machines, filepath.Join(machines, "inner"), filepath.Join(rootfs, "portables")} {
		if err := createSubvolume(p); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(p, "file"), "x")
	}
	if err := snapshotSubvolume(filepath.Join(machines, "inner"), filepath.Join(rootfs, "ro-snap"), true); err != nil {
		t.Fatal(err)
	}
	if n := len(subvolumes(t, root)); n != 6 { // base, rootfs, 4 nested
		t.Fatalf("%d subvolumes before the delete, want 6: %v", n, subvolumes(t, root))
	}
	if err := b.Delete(ctx, rootfs); err != nil {
		t.Fatal(err)
	}
	if subs := subvolumes(t, root); len(subs) != 1 {
		t.Errorf("subvolumes left after the delete: %v, want only the base", subs)
	}
	assertNoTemp(t, filepath.Dir(rootfs))
}

// TestBtrfsQuotaEnforced: with a 20 MiB limit a root process cannot write
// 40 MiB (EDQUOT); removing the limit lets it; Usage follows the qgroup.
func TestBtrfsQuotaEnforced(t *testing.T) {
	root, b := btrfsRoot(t)
	ctx := context.Background()
	rootfs := filepath.Join(containerDir(t, root, "c"), "rootfs")
	other := filepath.Join(containerDir(t, root, "other"), "rootfs")
	img := testImage(t)
	for _, p := range []string{rootfs, other} {
		if err := b.Create(ctx, img, p, Options{}); err != nil {
			t.Fatal(err)
		}
	}
	if quotaEnabled(rootfs) {
		t.Fatal("quotas are on before any limit was set")
	}
	if err := b.SetQuota(ctx, rootfs, 0); err != nil || quotaEnabled(rootfs) {
		t.Fatalf("removing a limit that was never set: %v, quotas on: %v", err, quotaEnabled(rootfs))
	}
	if err := b.SetQuota(ctx, rootfs, 20<<20); err != nil {
		t.Fatal(err)
	}
	if err := enableQuota(rootfs); err != nil { // a second enable is harmless
		t.Errorf("enabling quotas again: %v", err)
	}
	err := writeBytes(filepath.Join(rootfs, "fill"), 40<<20)
	if !errors.Is(err, unix.EDQUOT) && !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("writing 40 MiB under a 20 MiB limit: %v, want EDQUOT or ENOSPC", err)
	}
	t.Logf("past the limit: %v", err)
	if err := writeBytes(filepath.Join(other, "fill"), 40<<20); err != nil {
		t.Errorf("a tree without a limit beside the limited one: %v", err)
	}
	u, err := b.Usage(ctx, rootfs)
	if err != nil || u.Bytes > 21<<20 || u.Bytes < 8<<20 {
		t.Errorf("usage under a 20 MiB limit: %+v, %v", u, err)
	}
	if err := b.SetQuota(ctx, rootfs, 0); err != nil {
		t.Fatal(err)
	}
	if err := writeBytes(filepath.Join(rootfs, "fill"), 40<<20); err != nil {
		t.Fatalf("writing 40 MiB after the limit was removed: %v", err)
	}

	var qe *QuotaError
	if err := b.SetQuota(ctx, filepath.Join(rootfs, "etc"), 1<<20); !errors.As(err, &qe) || !errors.Is(err, ErrQuotaUnsupported) {
		t.Errorf("a limit on a plain directory: %v, want a *QuotaError", err)
	} else {
		t.Logf("refused: %v", err)
	}
}

// writeBytes writes n bytes of zeros to a new file at path and syncs it.
func writeBytes(path string, n int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for n > 0 {
		if _, err := f.Write(buf[:min(n, len(buf))]); err != nil {
			return err
		}
		n -= len(buf)
	}
	return f.Sync()
}

// TestBtrfsQuotaRefusedOffBtrfs: a limit on a tree that is not a subvolume
// (a dir-backend container under a btrfs host) is refused with a reason.
func TestBtrfsQuotaRefusedOffBtrfs(t *testing.T) {
	b := &Btrfs{root: t.TempDir()}
	err := b.SetQuota(context.Background(), t.TempDir(), 1<<20)
	if !errors.Is(err, ErrQuotaUnsupported) || !strings.Contains(err.Error(), "not a btrfs subvolume") {
		t.Errorf("SetQuota off btrfs: %v", err)
	}
}

// TestChooseBtrfs: auto picks btrfs for a root on btrfs, and a named
// backend is taken as named.
func TestChooseBtrfs(t *testing.T) {
	root, _ := btrfsRoot(t)
	c, err := Choose("auto", root)
	if err != nil || c.Backend != BtrfsName {
		t.Errorf("Choose(auto) on btrfs: %+v, %v", c, err)
	}
	off := t.TempDir()
	if c, err := Choose("auto", off); err != nil || c.Backend == BtrfsName {
		t.Errorf("Choose(auto) off btrfs: %+v, %v", c, err)
	}
	if c, err := Choose(BtrfsName, off); err == nil || !strings.Contains(err.Error(), "needs the lodge root on btrfs") {
		t.Errorf("Choose(btrfs) off btrfs: %+v, %v; want a refusal", c, err)
	} else {
		t.Logf("refused: %v", err)
	}

	// Without CAP_SYS_ADMIN (dropped from one thread's effective set, in a
	// goroutine that keeps the thread locked, so the thread ends with it)
	// auto falls back, saying why.
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			t.Error(err)
			return
		}
		data[0].Effective &^= 1 << unix.CAP_SYS_ADMIN
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			t.Error(err)
			return
		}
		c, err = Choose("auto", root)
	}()
	<-done
	if err != nil || c.Backend == BtrfsName || !strings.Contains(c.Reason, "CAP_SYS_ADMIN") {
		t.Errorf("Choose(auto) on btrfs without CAP_SYS_ADMIN: %+v, %v", c, err)
	}
	t.Logf("without CAP_SYS_ADMIN: %s (%s)", c.Backend, c.Reason)
}

// The kill tests run a btrfs operation in a child (this test binary, see
// kill_test.go's TestMain) that stops at a named step, or after AT entries
// of the base copy, and gets SIGKILL there.

func btrfsKillChild(op string) error {
	at, _ := strconv.ParseInt(os.Getenv("AT"), 10, 64)
	step := os.Getenv("STEP")
	hold := func(what string) {
		fmt.Println("reached", what)
		time.Sleep(time.Hour) // the parent kills us here
	}
	btrfsStep = func(s string) {
		if s == step {
			hold(s)
		}
	}
	opts := Options{Workers: 1, Progress: func(p Progress) {
		if at > 0 && p.Files == at {
			hold(fmt.Sprintf("%d of %d entries", p.Files, p.TotalFiles))
		}
	}}
	b := &Btrfs{root: os.Getenv("ROOT")}
	switch op {
	case "btrfs-create":
		return b.Create(context.Background(), os.Getenv("SRC"), os.Getenv("DST"), opts)
	case "btrfs-restore":
		return b.Restore(context.Background(), os.Getenv("SRC"), os.Getenv("DST"), opts)
	case "btrfs-delete":
		return b.Delete(context.Background(), os.Getenv("DST"))
	}
	return fmt.Errorf("unknown kill-test operation %q", op)
}

// killBtrfsAt runs op in a child and kills it with SIGKILL where asked.
func killBtrfsAt(t *testing.T, op string, env ...string) {
	t.Helper()
	line, killed, err := runKilled(t, op, env...)
	if err != nil {
		t.Fatalf("%s child %v ended before its kill point: %v", op, env, err)
	}
	if !killed {
		t.Fatalf("%s child was not killed by SIGKILL", op)
	}
	t.Logf("%s %v killed: %s", op, env, strings.TrimSpace(line))
}

// TestBtrfsCreateKilled: a create killed -9 while copying the image into
// its base, after the base is built, or after it is in place, leaves no
// tree or a complete one; the next create cleans up and succeeds.
func TestBtrfsCreateKilled(t *testing.T) {
	root, b := btrfsRoot(t)
	ctx := context.Background()
	img := testImage(t)
	dir := containerDir(t, root, "c")
	rootfs := filepath.Join(dir, "rootfs")
	env := []string{"ROOT=" + root, "SRC=" + img, "DST=" + rootfs}
	for _, kill := range []string{"AT=2", "AT=15", "STEP=base-built", "STEP=base-renamed"} {
		killBtrfsAt(t, "btrfs-create", append(env, kill)...)
		if _, err := os.Lstat(rootfs); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("killed at %s: %s exists (%v)", kill, rootfs, err)
		}
		bases, _ := os.ReadDir(b.imagesDir())
		for _, e := range bases {
			p := filepath.Join(b.imagesDir(), e.Name())
			if !strings.HasPrefix(e.Name(), TempPrefix) && isSubvolume(p) {
				compareTrees(t, img, p) // a base in place is complete
			}
		}
		if kill == "STEP=base-renamed" {
			break // the base is in place: what is left to test is the retry
		}
		if err := b.Create(ctx, img, rootfs, Options{}); err != nil {
			t.Fatal(err)
		}
		compareTrees(t, img, rootfs)
		assertNoTemp(t, b.imagesDir()) // the retry removed the killed build
		if err := b.Delete(ctx, rootfs); err != nil {
			t.Fatal(err)
		}
		// Start over without a base, so the next kill hits a build.
		for _, e := range bases {
			removeTree(filepath.Join(b.imagesDir(), e.Name()))
		}
		if err := removeTree(b.imagesDir()); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Create(ctx, img, rootfs, Options{}); err != nil {
		t.Fatal(err)
	}
	compareTrees(t, img, rootfs)
}

// TestBtrfsRestoreKilled: a restore killed -9 before or after its exchange
// leaves the old tree or the restored one, complete, and only TempPrefix
// subvolumes, which RemoveStale deletes (a read-only one included).
func TestBtrfsRestoreKilled(t *testing.T) {
	root, b := btrfsRoot(t)
	ctx := context.Background()
	dir := containerDir(t, root, "c")
	rootfs, snap := filepath.Join(dir, "rootfs"), filepath.Join(dir, "snapshots", "s", "rootfs")
	if err := b.Create(ctx, testImage(t), rootfs, Options{}); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(rootfs, "counter"), "snapshot")
	os.MkdirAll(filepath.Dir(snap), 0o700)
	if err := b.Snapshot(ctx, rootfs, snap, Options{}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ step, want string }{
		{"restore-snapshotted", "current"},
		{"restore-exchanged", "snapshot"},
	} {
		writeFile(t, filepath.Join(rootfs, "counter"), "current")
		killBtrfsAt(t, "btrfs-restore", "ROOT="+root, "SRC="+snap, "DST="+rootfs, "STEP="+c.step)
		if got := readFile(t, filepath.Join(rootfs, "counter")); got != c.want {
			t.Errorf("killed at %s: the counter reads %q, want %q", c.step, got, c.want)
		}
		if !isSubvolume(rootfs) {
			t.Errorf("killed at %s: %s is not a subvolume", c.step, rootfs)
		}
		if err := RemoveStale(dir); err != nil {
			t.Fatal(err)
		}
		assertNoTemp(t, dir)
	}
	// A leftover read-only snapshot (a killed snapshot's) goes too.
	if err := snapshotSubvolume(rootfs, tempPath(snap, "test"), true); err != nil {
		t.Fatal(err)
	}
	if err := RemoveStale(filepath.Dir(snap)); err != nil {
		t.Fatal(err)
	}
	assertNoTemp(t, filepath.Dir(snap))
	if err := b.Restore(ctx, snap, rootfs, Options{}); err != nil {
		t.Fatal(err)
	}
	compareTrees(t, snap, rootfs)
	if subs := subvolumes(t, root); len(subs) != 3 { // base, rootfs, snapshot
		t.Errorf("subvolumes: %v, want the base, the tree and its snapshot", subs)
	}
}

// TestBtrfsDeleteKilled: a delete killed -9 after moving the tree aside
// leaves only a TempPrefix subvolume, and RemoveStale deletes it.
func TestBtrfsDeleteKilled(t *testing.T) {
	root, b := btrfsRoot(t)
	dir := containerDir(t, root, "c")
	rootfs := filepath.Join(dir, "rootfs")
	if err := b.Create(context.Background(), testImage(t), rootfs, Options{}); err != nil {
		t.Fatal(err)
	}
	killBtrfsAt(t, "btrfs-delete", "ROOT="+root, "DST="+rootfs, "STEP=delete-renamed")
	if _, err := os.Lstat(rootfs); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("killed after moving aside: %s exists (%v)", rootfs, err)
	}
	if err := RemoveStale(dir); err != nil {
		t.Fatal(err)
	}
	assertNoTemp(t, dir)
	if subs := subvolumes(t, root); len(subs) != 1 {
		t.Errorf("subvolumes: %v, want only the base", subs)
	}
}

// TestBtrfsImageKeyFollowsImage: an image's base is made anew when lodge
// rewrites its description (files changed by a newer sanitizer) or the
// image is rebuilt under the same name, and only then.
func TestBtrfsImageKeyFollowsImage(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "debian-x")
	img := filepath.Join(dir, "rootfs")
	os.MkdirAll(img, 0o755)
	writeFile(t, filepath.Join(dir, "image.json"), `{"checked":1}`)
	key := func() string {
		k, err := imageKey(img)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	k1 := key()
	if !strings.HasPrefix(k1, "debian-x-") || key() != k1 {
		t.Fatalf("key %q (then %q): want a stable debian-x-HASH", k1, key())
	}
	writeFile(t, filepath.Join(dir, "image.json"), `{"checked":2}`)
	k2 := key()
	if k2 == k1 {
		t.Error("rewriting image.json kept the key")
	}
	os.RemoveAll(img)
	os.MkdirAll(img, 0o755)
	if key() == k2 {
		t.Error("a rebuilt image directory kept the key")
	}
}

// BenchmarkBtrfsCreate times a create from a real image whose base exists
// (the first create, which copies the image into the base, is outside the
// clock), and a snapshot of the result: both are one snapshot ioctl.
//
//	go test ./storage -run '^$' -bench BtrfsCreate -benchtime 20x
func BenchmarkBtrfsCreate(b *testing.B) {
	needRoot(b)
	image := benchImage(b)
	mnt := mountBtrfs(b, 4<<30)
	be := &Btrfs{root: mnt}
	ctx := context.Background()
	first := filepath.Join(mnt, "first")
	if err := be.Create(ctx, image, first, Options{}); err != nil {
		b.Fatal(err)
	}
	var create, snap time.Duration
	b.ResetTimer()
	for i := range b.N {
		dst := filepath.Join(mnt, "c"+strconv.Itoa(i))
		start := time.Now()
		if err := be.Create(ctx, image, dst, Options{}); err != nil {
			b.Fatal(err)
		}
		create += time.Since(start)
		start = time.Now()
		if err := be.Snapshot(ctx, dst, dst+".snap", Options{}); err != nil {
			b.Fatal(err)
		}
		snap += time.Since(start)
	}
	b.ReportMetric(float64(create.Microseconds())/float64(b.N), "create-µs")
	b.ReportMetric(float64(snap.Microseconds())/float64(b.N), "snapshot-µs")
}
