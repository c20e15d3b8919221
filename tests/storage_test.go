package tests

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestCreateRecordsStorage: a new container's root filesystem is made by
// the dir storage backend, which its directory records with the image it
// came from, and the copy keeps the image's owners, modes and links.
func TestCreateRecordsStorage(t *testing.T) {
	e := newEnv(t)
	e.useStorage("dir")
	e.createBusybox("st1")
	dir := filepath.Join(e.root, "containers", "st1")
	data, err := os.ReadFile(filepath.Join(dir, "storage.json"))
	if err != nil {
		t.Fatalf("no storage record after create: %v", err)
	}
	var rec struct{ Backend, Image string }
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatalf("storage.json: %v: %s", err, data)
	}
	if rec.Backend != "dir" || rec.Image == "" {
		t.Fatalf("storage.json = %s, want the dir backend and an image id", data)
	}
	image := filepath.Join(sharedImages, rec.Image, "rootfs")
	for _, rel := range []string{".", "bin", "bin/busybox", "bin/sh", "etc/passwd"} {
		var a, b unix.Stat_t
		if err := unix.Lstat(filepath.Join(image, rel), &a); err != nil {
			t.Fatalf("image %s: %v", rec.Image, err)
		}
		if err := unix.Lstat(filepath.Join(dir, "rootfs", rel), &b); err != nil {
			t.Fatal(err)
		}
		if a.Mode != b.Mode || a.Uid != b.Uid || a.Gid != b.Gid || a.Size != b.Size && a.Mode&unix.S_IFMT != unix.S_IFDIR {
			t.Errorf("%s: image %o %d:%d %d bytes, container %o %d:%d %d bytes", rel, a.Mode, a.Uid, a.Gid, a.Size, b.Mode, b.Uid, b.Gid, b.Size)
		}
	}
	e.must("start", "st1")
	if got := e.must("exec", "st1", "--", "cat", "/etc/hostname"); got != "st1\n" {
		t.Errorf("hostname file inside = %q", got)
	}
}
