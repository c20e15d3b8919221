package tests

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"lodge/internal/testreq"

	"golang.org/x/sys/unix"
)

// TestChownShift: with rootfs.shift = chown, files are shifted once into the
// container's host range (with progress), recorded, and not shifted again.
func TestChownShift(t *testing.T) {
	e := newEnv(t)
	e.useStorage("dir") // overlay containers share their layers: never chowned
	e.createBusybox("s1", "rootfs.shift=chown")
	r := e.run("start", "s1")
	if r.code != 0 || !strings.Contains(r.stderr, "shifted") {
		t.Fatalf("first start of a chown-shifted container: %s", r)
	}
	i := e.info("s1")
	if i.RootfsMode != "shifted" {
		t.Errorf("rootfs mode %q, want shifted", i.RootfsMode)
	}
	base := ownerOf(t, filepath.Join(e.root, "containers/s1/rootfs/bin/busybox"))
	if !strings.HasPrefix(i.IDMap, itoa(base)+"-") {
		t.Errorf("busybox is owned by host uid %d, want the start of %s", base, i.IDMap)
	}
	if out := e.must("exec", "s1", "--", "stat", "-c", "%u:%g", "/bin/busybox"); strings.TrimSpace(out) != "0:0" {
		t.Errorf("inside, /bin/busybox is owned by %s, want 0:0", out)
	}
	e.must("exec", "s1", "--", "touch", "/root/made-inside")
	if owner := ownerOf(t, filepath.Join(e.root, "containers/s1/rootfs/root/made-inside")); owner != base {
		t.Errorf("a file made inside is owned by host uid %d, want %d", owner, base)
	}
	e.must("stop", "--force", "s1")
	r = e.run("start", "s1")
	if r.code != 0 || strings.Contains(r.stderr, "shift") {
		t.Fatalf("second start shifted again or failed: %s", r)
	}
	e.must("stop", "--force", "s1")
	e.must("delete", "s1")
	e.assertNoLeftovers("s1")
}

// TestIdmapFallback puts the lodge root on overlayfs, which cannot be idmapped:
// rootfs.shift = auto says so and falls back to a chown shift; = idmap refuses.
func TestIdmapFallback(t *testing.T) {
	e := newEnv(t)
	base := t.TempDir()
	for _, d := range []string{"lower", "upper", "work", "merged"} {
		os.Mkdir(filepath.Join(base, d), 0o755)
	}
	merged := filepath.Join(base, "merged")
	opts := "lowerdir=" + base + "/lower,upperdir=" + base + "/upper,workdir=" + base + "/work"
	if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
		testreq.Skipf(t, "overlay", "cannot mount overlayfs here (%v)", err)
	}
	t.Cleanup(func() { unix.Unmount(merged, unix.MNT_DETACH) })
	e.root = merged
	t.Cleanup(e.cleanup) // runs before the unmount

	e.createBusybox("o1", "rootfs.shift=idmap")
	e.expectFail(1, "cannot be idmapped", "start", "o1")
	e.assertNoLeftovers("o1")

	e.createBusybox("o2")
	r := e.run("start", "o2")
	if r.code != 0 || !strings.Contains(r.stderr, "overlayfs") || !strings.Contains(r.stderr, "chown") {
		t.Fatalf("start on overlayfs should explain the chown fallback: %s", r)
	}
	if got := strings.TrimSpace(e.must("exec", "o2", "--", "id", "-u")); got != "0" {
		t.Errorf("id -u = %s", got)
	}
	e.must("stop", "--force", "o2")
}

func ownerOf(t *testing.T, path string) int {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return int(fi.Sys().(*syscall.Stat_t).Uid)
}
