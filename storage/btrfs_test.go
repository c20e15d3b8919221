package storage

import (
	"context"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"unsafe"

	"lodge/internal/testreq"

	"golang.org/x/sys/unix"
)

// mountBtrfs mounts a fresh btrfs filesystem of size bytes on a loop device
// (testreq.LoopBtrfs), as root.
func mountBtrfs(t testing.TB, size int64) string {
	t.Helper()
	needRoot(t)
	return testreq.LoopBtrfs(t, size)
}

// fiemap is struct fiemap with room for extents (linux/fiemap.h).
type fiemap struct {
	start, length                           uint64
	flags, mappedExtents, extentCount, resv uint32
	extents                                 [64]fiemapExtent
}

type fiemapExtent struct {
	logical, physical, length uint64
	resv64                    [2]uint64
	flags                     uint32
	resv                      [3]uint32
}

const (
	fsIocFiemap        = 0xc020660b
	fiemapFlagSync     = 0x1
	fiemapExtentShared = 0x2000
)

// sharedBytes reports how many bytes of path's data extents the filesystem
// marks as shared with another file, and how many there are in all.
func sharedBytes(t testing.TB, path string) (shared, total uint64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := fiemap{length: ^uint64(0), flags: fiemapFlagSync, extentCount: 64}
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), fsIocFiemap, uintptr(unsafe.Pointer(&m))); errno != 0 {
		t.Fatalf("FIEMAP %s: %v", path, errno)
	}
	for _, e := range m.extents[:m.mappedExtents] {
		total += e.length
		if e.flags&fiemapExtentShared != 0 {
			shared += e.length
		}
	}
	return shared, total
}

// TestCopyOnWriteCloneOnBtrfs clones a tree on btrfs with CopyOnWrite: the
// copy is as faithful as a full one, every file with data was reflinked,
// FIEMAP marks the data blocks shared, and writing to the clone leaves its
// source alone.
func TestCopyOnWriteCloneOnBtrfs(t *testing.T) {
	mnt := mountBtrfs(t, 256<<20)
	src, dst := filepath.Join(mnt, "src"), filepath.Join(mnt, "dst")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	makeTree(t, src)
	big := make([]byte, 8<<20)
	rand.Read(big)
	if err := os.WriteFile(filepath.Join(src, "big"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	var last Progress
	if err := (Dir{}).Clone(context.Background(), src, dst, Options{CopyOnWrite: true, Progress: func(p Progress) { last = p }}); err != nil {
		t.Fatal(err)
	}
	compareTrees(t, src, dst)
	// Regular files with data, each inode once: etc/hostname, the deep
	// file, suid, ping, acl, home/owned, hl1, sparse, big.
	if last.Reflinked != 9 {
		t.Errorf("%d files reflinked, want 9 (progress %+v)", last.Reflinked, last)
	}
	for _, p := range []string{filepath.Join(src, "big"), filepath.Join(dst, "big"), filepath.Join(dst, "sparse")} {
		shared, total := sharedBytes(t, p)
		if total == 0 || shared != total {
			t.Errorf("%s: %d of %d bytes of extents shared, want all", p, shared, total)
		}
	}
	if out, err := exec.Command("btrfs", "filesystem", "du", "-s", src, dst).CombinedOutput(); err == nil {
		t.Logf("btrfs filesystem du:\n%s", out)
	}

	// Copy on write: a write to the clone is the clone's alone.
	f, err := os.OpenFile(filepath.Join(dst, "big"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("changed"), 0)
	f.Close()
	if got, _ := os.ReadFile(filepath.Join(src, "big")); string(got[:7]) != string(big[:7]) {
		t.Error("writing to the clone changed its source")
	}
	if shared, total := sharedBytes(t, filepath.Join(dst, "big")); shared == total {
		t.Errorf("after a write to the clone, all %d bytes are still shared", total)
	}
}

// TestCreateOnBtrfsReflinksWithoutAsking: a plain create reflinks too when
// the filesystem can.
func TestCreateOnBtrfsReflinksWithoutAsking(t *testing.T) {
	mnt := mountBtrfs(t, 256<<20)
	src, dst := filepath.Join(mnt, "image"), filepath.Join(mnt, "rootfs")
	manyFiles(t, src, 50, 64<<10)
	var last Progress
	if err := (Dir{}).Create(context.Background(), src, dst, Options{Progress: func(p Progress) { last = p }}); err != nil {
		t.Fatal(err)
	}
	if last.Reflinked != 50 {
		t.Errorf("%d of 50 files reflinked", last.Reflinked)
	}
	compareTrees(t, src, dst)
}
