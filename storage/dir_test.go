package storage

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestCopyFidelity copies a tree holding every kind of file and property
// and compares it with its source, field by field; `cp -a`'s copy is held
// to the same comparison, so the comparison asks no more than cp keeps.
func TestCopyFidelity(t *testing.T) {
	needRoot(t)
	base := t.TempDir()
	src, dst := filepath.Join(base, "src"), filepath.Join(base, "dst")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	makeTree(t, src)
	var last Progress
	calls := 0
	err := Dir{}.Create(context.Background(), src, dst, Options{Progress: func(p Progress) { last = p; calls++ }})
	if err != nil {
		t.Fatal(err)
	}
	compareTrees(t, src, dst)
	if last.Files != last.TotalFiles || last.Bytes != last.TotalBytes || last.TotalFiles == 0 || calls != int(last.TotalFiles) {
		t.Errorf("last progress %+v after %d calls; want every file and byte done, one call per file", last, calls)
	}
	assertNoTemp(t, base)

	cpDst := filepath.Join(base, "cp")
	if out, err := exec.Command("cp", "-a", "--", src, cpDst).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v: %s", err, out)
	}
	compareTrees(t, src, cpDst)
}

func assertNoTemp(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), TempPrefix) {
			t.Errorf("%s left behind in %s", e.Name(), dir)
		}
	}
}

// manyFiles makes n files of size bytes under dir.
func manyFiles(t *testing.T, dir string, n, size int) {
	t.Helper()
	data := make([]byte, size)
	for i := range n {
		sub := filepath.Join(dir, strconv.Itoa(i%10))
		os.MkdirAll(sub, 0o755)
		if err := os.WriteFile(filepath.Join(sub, strconv.Itoa(i)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCopyCancelledLeavesNothing cancels a copy part way (from its progress
// callback, so the moment is certain) and finds neither the target nor a
// temporary tree.
func TestCopyCancelledLeavesNothing(t *testing.T) {
	needRoot(t)
	base := t.TempDir()
	src, dst := filepath.Join(base, "src"), filepath.Join(base, "dst")
	manyFiles(t, src, 400, 16<<10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var seen Progress
	err := Dir{}.Clone(ctx, src, dst, Options{Workers: 4, Progress: func(p Progress) {
		if p.Files >= 100 && seen.Files == 0 {
			seen = p
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled copy returned %v, want context.Canceled", err)
	}
	if seen.Files == 0 || seen.Files >= seen.TotalFiles {
		t.Fatalf("cancelled at %+v: not part way", seen)
	}
	if _, err := os.Lstat(dst); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("target after a cancelled copy: %v, want it missing", err)
	}
	assertNoTemp(t, base)
}

func TestCopyRefusesExistingTarget(t *testing.T) {
	needRoot(t)
	base := t.TempDir()
	src, dst := filepath.Join(base, "src"), filepath.Join(base, "dst")
	manyFiles(t, src, 3, 10)
	os.Mkdir(dst, 0o755)
	if err := (Dir{}).Create(context.Background(), src, dst, Options{}); !errors.Is(err, os.ErrExist) {
		t.Fatalf("copy onto an existing target: %v, want ErrExist", err)
	}
}

// TestCopyOnWriteRefusedWithoutReflinks: on a filesystem that cannot share
// blocks, a copy-on-write clone is refused, not silently made in full.
func TestCopyOnWriteRefusedWithoutReflinks(t *testing.T) {
	needRoot(t)
	base := t.TempDir()
	if fs := fsName(base); fs == "btrfs" || fs == "xfs" {
		t.Skipf("SKIPPED: %s is on %s, which may share blocks", base, fs)
	}
	src, dst := filepath.Join(base, "src"), filepath.Join(base, "dst")
	manyFiles(t, src, 20, 100)
	err := Dir{}.Clone(context.Background(), src, dst, Options{CopyOnWrite: true})
	if !errors.Is(err, ErrNoCopyOnWrite) {
		t.Fatalf("copy-on-write clone on %s: %v, want ErrNoCopyOnWrite", fsName(base), err)
	}
	if _, err := os.Lstat(dst); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("target after a refused clone: %v, want it missing", err)
	}
	assertNoTemp(t, base)
}

// TestSnapshotsRestoreInAnyOrder takes five snapshots of a changing tree and
// restores them out of order: each restore brings back its own state and
// every snapshot, newer ones included, stays restorable.
func TestSnapshotsRestoreInAnyOrder(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	base := t.TempDir()
	rootfs, snaps := filepath.Join(base, "rootfs"), filepath.Join(base, "snapshots")
	os.Mkdir(snaps, 0o700)
	makeTree(t, filepath.Join(base, "image-holder"))
	var b Dir
	if err := b.Create(ctx, filepath.Join(base, "image-holder"), rootfs, Options{}); err != nil {
		t.Fatal(err)
	}
	counter := filepath.Join(rootfs, "counter")
	for i := 1; i <= 5; i++ {
		if err := os.WriteFile(counter, []byte(strconv.Itoa(i)), 0o644); err != nil {
			t.Fatal(err)
		}
		if i == 4 {
			os.Remove(filepath.Join(rootfs, "etc/hostname"))
		}
		if err := b.Snapshot(ctx, rootfs, filepath.Join(snaps, strconv.Itoa(i)), Options{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, i := range []int{3, 5, 1, 4, 2, 5} {
		snap := filepath.Join(snaps, strconv.Itoa(i))
		if err := b.Restore(ctx, snap, rootfs, Options{}); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(counter); string(got) != strconv.Itoa(i) {
			t.Errorf("after restoring snapshot %d the counter is %q", i, got)
		}
		compareTrees(t, snap, rootfs)
		if entries, _ := os.ReadDir(snaps); len(entries) != 5 {
			t.Errorf("after restoring snapshot %d, %d snapshots are left, want 5", i, len(entries))
		}
		assertNoTemp(t, base)
	}
	if err := b.Delete(ctx, filepath.Join(snaps, "2")); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx, filepath.Join(snaps, "2")); err != nil {
		t.Errorf("deleting a deleted snapshot again: %v, want success", err)
	}
	if entries, _ := os.ReadDir(snaps); len(entries) != 4 {
		t.Errorf("%d snapshots after deleting one of 5", len(entries))
	}
	assertNoTemp(t, snaps)
}

func TestDirRefusesQuotaWithReason(t *testing.T) {
	dir := t.TempDir()
	err := Dir{}.SetQuota(context.Background(), dir, 200<<20)
	var qe *QuotaError
	if !errors.Is(err, ErrQuotaUnsupported) || !errors.As(err, &qe) || qe.Reason == "" || !strings.Contains(err.Error(), fsName(dir)) {
		t.Fatalf("SetQuota on dir: %v, want a QuotaError naming %s", err, fsName(dir))
	}
	if err := (Dir{}).SetQuota(context.Background(), dir, 0); err != nil {
		t.Errorf("removing a limit that is not set: %v", err)
	}
}

func TestUsageCountsHardLinksOnce(t *testing.T) {
	dir := t.TempDir()
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(i)
	}
	os.WriteFile(filepath.Join(dir, "a"), data, 0o644)
	os.Link(filepath.Join(dir, "a"), filepath.Join(dir, "b"))
	u, err := Dir{}.Usage(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if u.Inodes != 2 || u.Bytes < 1<<20 || u.Bytes > 1<<20+64<<10 {
		t.Errorf("usage of a directory with one 1 MiB file linked twice: %+v", u)
	}
}

func TestRecord(t *testing.T) {
	dir := t.TempDir()
	rec, err := ReadRecord(dir)
	if err != nil || rec.Backend != DirName {
		t.Fatalf("container without a record: %+v, %v; want the dir backend", rec, err)
	}
	want := Record{Backend: "overlay", Image: "debian-bookworm-abc", Source: "golden/snap1"}
	if err := WriteRecord(dir, want); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadRecord(dir); err != nil || got != want {
		t.Errorf("read back %+v, %v; want %+v", got, err, want)
	}
	os.WriteFile(filepath.Join(dir, RecordFile), []byte(`{"image":"x"}`), 0o644)
	if _, err := ReadRecord(dir); err == nil {
		t.Error("a record naming no backend was accepted")
	}
}

func TestForContainer(t *testing.T) {
	dir := t.TempDir()
	if b, rec, err := ForContainer(dir, dir); err != nil || b.Name() != DirName || rec.Backend != DirName {
		t.Fatalf("container without a record: %v, %+v, %v", b, rec, err)
	}
	WriteRecord(dir, Record{Backend: "zfs"})
	if _, _, err := ForContainer(dir, dir); err == nil || !strings.Contains(err.Error(), `"zfs" does not exist`) {
		t.Errorf("a record naming an unknown backend: %v", err)
	}
}

func TestRegistry(t *testing.T) {
	b, err := New(DirName, t.TempDir())
	if err != nil || b.Name() != DirName {
		t.Fatalf("New(dir) = %v, %v", b, err)
	}
	if _, err := New("zfs", t.TempDir()); err == nil || !strings.Contains(err.Error(), "known: ") {
		t.Errorf("New(zfs) = %v, want an error listing the known backends", err)
	}
}

func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, TempPrefix+"rootfs.copy.1.1", "etc"), 0o755)
	os.Mkdir(filepath.Join(dir, "rootfs"), 0o755)
	if err := RemoveStale(dir); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != "rootfs" {
		t.Errorf("after RemoveStale: %v, want only rootfs", entries)
	}
}
