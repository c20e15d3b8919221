package storage

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// boundLoops lists the loop devices bound to a file below dir.
func boundLoops(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob("/sys/block/loop*/loop/backing_file")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err == nil && strings.HasPrefix(string(data), dir+"/") {
			found = append(found, strings.TrimSpace(string(data)))
		}
	}
	return found
}

// assertNoLoops fails when a loop device stays bound to an image below
// dir. The last mount's release detaches its device with autoclear, which
// the kernel may finish just after the close returns: wait for it.
func assertNoLoops(t *testing.T, dir string) {
	t.Helper()
	for range 100 {
		if len(boundLoops(t, dir)) == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Errorf("loop devices left bound to images below %s: %v", dir, boundLoops(t, dir))
}

func needDiskTools(t *testing.T) *overlayEnv {
	e := newOverlayEnv(t)
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		t.Skipf("no loop devices here: %v", err)
	}
	t.Cleanup(func() { assertNoLoops(t, filepath.Dir(e.root)) })
	return e
}

// writeFile writes n bytes of data to name in the container's merged
// root through a writable view.
func (e *overlayEnv) writeFile(t *testing.T, ct, name string, n int) error {
	t.Helper()
	v, err := OpenView(e.root, ct, true)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	return os.WriteFile(filepath.Join(v.Dir, name), make([]byte, n), 0o644)
}

// statfsView is the merged root's statfs (what df / shows inside).
func (e *overlayEnv) statfsView(t *testing.T, ct string) unix.Statfs_t {
	t.Helper()
	v, err := OpenView(e.root, ct, false)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	var st unix.Statfs_t
	if err := unix.Statfs(v.Dir+"/", &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// checkUpperMarks opens a tree's upper (on its image or not) and checks the
// whiteout and opaque directory of edit.
func checkUpperMarks(t *testing.T, tree string) {
	t.Helper()
	u, err := OpenUpperDir(tree)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	checkMarks(t, filepath.Join(u.Dir, "upper"))
}

const mb = 1 << 20

// TestOverlayDiskLimit: a limit puts the upper on an image of its size
// (data, whiteouts and opaque marks kept), the merged root's statfs shows
// it and writing past it fails with ENOSPC; it grows in place, shrinks and
// goes away keeping the data; a limit below the data is refused, changing
// nothing; no loop device stays bound.
func TestOverlayDiskLimit(t *testing.T) {
	e := needDiskTools(t)
	ctx := context.Background()
	c1 := e.container(t, "c1")
	rootfs := filepath.Join(c1, "rootfs")
	e.edit(t, c1, "a")
	if err := e.o.SetQuota(ctx, rootfs, 32*mb); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(rootfs, "upper")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("limited tree still has upper/ beside its image: %v", err)
	}
	if got := e.listing(t, c1); got != editedListing {
		t.Errorf("after the limit: %q, want %q", got, editedListing)
	}
	checkUpperMarks(t, rootfs)
	// Users at once (a running container, a view, a usage query): one
	// loop device, one filesystem.
	v, err := OpenView(e.root, c1, false)
	if err != nil {
		t.Fatal(err)
	}
	u1, err := OpenUpperDir(rootfs)
	if err != nil {
		t.Fatal(err)
	}
	u2, err := OpenUpperDir(rootfs)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := inode(t, u1.Dir+"/upper"), inode(t, u2.Dir+"/upper"); a != b {
		t.Errorf("two mounts of the image show different uppers (%d, %d)", a, b)
	}
	if loops := boundLoops(t, filepath.Dir(e.root)); len(loops) != 1 {
		t.Errorf("loop devices bound with three users of one image: %v", loops)
	}
	u1.Close()
	u2.Close()
	v.Close()
	st := e.statfsView(t, c1)
	if size := int64(st.Blocks) * st.Bsize; size > 32*mb || size < 24*mb {
		t.Errorf("statfs of the merged root: %d bytes, want about 32 MiB", size)
	}
	if err := e.writeFile(t, c1, "big", 40*mb); !errors.Is(err, unix.ENOSPC) {
		t.Errorf("writing 40 MiB under a 32 MiB limit: %v, want ENOSPC", err)
	}
	if err := e.writeFile(t, c1, "big", 20*mb); err != nil {
		t.Fatal(err)
	}
	if u, err := e.o.Usage(ctx, rootfs); err != nil || u.Bytes < 20*mb || u.Bytes > 32*mb {
		t.Errorf("usage %+v, %v: want 20..32 MiB", u, err)
	}
	if err := e.o.SetQuota(ctx, rootfs, 64*mb); err != nil {
		t.Fatal(err)
	}
	if st := e.statfsView(t, c1); int64(st.Blocks)*st.Bsize < 56*mb {
		t.Errorf("after growing to 64 MiB statfs shows %d bytes", int64(st.Blocks)*st.Bsize)
	}
	// Too small for the data: refused, nothing changed.
	err = e.o.SetQuota(ctx, rootfs, 16*mb)
	var qe *QuotaError
	if !errors.As(err, &qe) || !strings.Contains(err.Error(), "delete files inside first") {
		t.Errorf("a limit below the data: %v", err)
	}
	if n, _ := diskSize(rootfs); n != 64*mb {
		t.Errorf("after a refused shrink the image is %d bytes", n)
	}
	assertNoTemp(t, c1)
	// Shrink, keeping everything.
	if err := e.o.SetQuota(ctx, rootfs, 28*mb); err != nil {
		t.Fatal(err)
	}
	if got, want := e.listing(t, c1), ". a big etc etc/hostname lowerdir"; got != want {
		t.Errorf("after shrinking: %q, want %q", got, want)
	}
	checkUpperMarks(t, rootfs)
	// No limit: the upper back beside layers.json.
	if err := e.o.SetQuota(ctx, rootfs, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(rootfs, DiskImage)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("image left after removing the limit: %v", err)
	}
	checkMarks(t, filepath.Join(rootfs, "upper"))
	if got, want := e.listing(t, c1), ". a big etc etc/hostname lowerdir"; got != want {
		t.Errorf("after removing the limit: %q, want %q", got, want)
	}
	if err := e.o.SetQuota(ctx, rootfs, 4*mb); !errors.Is(err, ErrQuotaUnsupported) || !strings.Contains(err.Error(), "smallest limit") {
		t.Errorf("a 4 MiB limit: %v", err)
	}
	assertNoTemp(t, c1)
	assertNoLoops(t, filepath.Dir(e.root))
}

// TestOverlayDiskRunningRefused: while a container runs, a limit only
// grows; adding, shrinking or removing one is refused with ErrStopFirst.
func TestOverlayDiskRunningRefused(t *testing.T) {
	e := needDiskTools(t)
	ctx := context.Background()
	c1 := e.container(t, "c1")
	rootfs := filepath.Join(c1, "rootfs")
	if err := e.o.SetQuotaRunning(ctx, rootfs, 32*mb); !errors.Is(err, ErrStopFirst) {
		t.Errorf("adding a limit while running: %v", err)
	}
	if err := e.o.SetQuotaRunning(ctx, rootfs, 0); err != nil {
		t.Errorf("no limit, still none, while running: %v", err)
	}
	if err := e.o.SetQuota(ctx, rootfs, 32*mb); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int64{0, 20 * mb} {
		if err := e.o.SetQuotaRunning(ctx, rootfs, n); !errors.Is(err, ErrStopFirst) || !strings.Contains(err.Error(), "stop it first") {
			t.Errorf("limit %d while running: %v", n, err)
		}
	}
	if err := e.o.SetQuotaRunning(ctx, rootfs, 32*mb); err != nil {
		t.Errorf("the same limit while running: %v", err)
	}
	if !haveCap(unix.CAP_SYS_RESOURCE) {
		if err := e.o.SetQuotaRunning(ctx, rootfs, 48*mb); !errors.Is(err, ErrStopFirst) || !strings.Contains(err.Error(), "CAP_SYS_RESOURCE") {
			t.Errorf("growing online without CAP_SYS_RESOURCE: %v", err)
		}
		t.Skip("growing a running container's limit online needs CAP_SYS_RESOURCE, which this process lacks (bounding set); its refusal is checked")
	}
	// A view stands for the running container: it keeps the filesystem mounted.
	v, err := OpenView(e.root, c1, false)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if err := e.o.SetQuotaRunning(ctx, rootfs, 48*mb); err != nil {
		t.Fatal(err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(v.Dir+"/", &st); err != nil || int64(st.Blocks)*st.Bsize < 40*mb {
		t.Errorf("the mounted filesystem did not grow online: %d bytes, %v", int64(st.Blocks)*st.Bsize, err)
	}
}

// TestOverlayDiskCopies: snapshot (the stopped container's upper copied
// out of its image), live snapshot, full and copy-on-write clones, and a
// restore of a limited tree; the container keeps its limit throughout.
func TestOverlayDiskCopies(t *testing.T) {
	e := needDiskTools(t)
	ctx := context.Background()
	c1 := e.container(t, "c1")
	rootfs := filepath.Join(c1, "rootfs")
	e.edit(t, c1, "a")
	if err := e.o.SetQuota(ctx, rootfs, 32*mb); err != nil {
		t.Fatal(err)
	}
	s1 := e.snapDir(t, c1, "s1")
	if err := e.o.Snapshot(ctx, rootfs, filepath.Join(s1, "rootfs"), Options{}); err != nil {
		t.Fatal(err)
	}
	if n, _ := diskSize(rootfs); n != 32*mb {
		t.Errorf("the source lost its limit in the snapshot: image of %d bytes", n)
	}
	ids := e.layers(t)
	if len(ids) != 1 {
		t.Fatalf("layers after the snapshot: %v", ids)
	}
	checkMarks(t, e.o.layerPath(ids[0]))
	for _, d := range []string{c1, s1} {
		if got := e.listing(t, d); got != editedListing {
			t.Errorf("%s after the snapshot = %q", d, got)
		}
	}
	if err := e.writeFile(t, c1, "b", 1000); err != nil {
		t.Fatal(err)
	}
	const withB = ". a b etc etc/hostname lowerdir"
	s2 := e.snapDir(t, c1, "s2")
	if err := e.o.Snapshot(ctx, rootfs, filepath.Join(s2, "rootfs"), Options{Live: true}); err != nil {
		t.Fatal(err)
	}
	c2 := e.container(t, "c2")
	os.RemoveAll(filepath.Join(c2, "rootfs"))
	if err := e.o.Clone(ctx, rootfs, filepath.Join(c2, "rootfs"), Options{}); err != nil {
		t.Fatal(err)
	}
	if n, _ := diskSize(filepath.Join(c2, "rootfs")); n != 32*mb {
		t.Errorf("a full clone of a limited tree has an image of %d bytes, want the source's", n)
	}
	c3 := e.container(t, "c3")
	os.RemoveAll(filepath.Join(c3, "rootfs"))
	if err := e.o.Clone(ctx, rootfs, filepath.Join(c3, "rootfs"), Options{CopyOnWrite: true}); err != nil {
		t.Fatal(err)
	}
	// The manager gives a clone the source's limits.disk.
	if err := e.o.SetQuota(ctx, filepath.Join(c3, "rootfs"), 32*mb); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{c1, s2, c2, c3} {
		if got := e.listing(t, d); got != withB {
			t.Errorf("%s = %q, want %q", d, got, withB)
		}
	}
	if err := e.o.Restore(ctx, filepath.Join(s1, "rootfs"), rootfs, Options{}); err != nil {
		t.Fatal(err)
	}
	if got := e.listing(t, c1); got != editedListing {
		t.Errorf("after restoring s1: %q", got)
	}
	if n, _ := diskSize(rootfs); n != 32*mb {
		t.Errorf("the restored tree has an image of %d bytes, want the limit kept", n)
	}
	for _, d := range []string{c1, c2, c3} {
		if err := e.o.Delete(ctx, filepath.Join(d, "rootfs")); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{s1, s2} {
		if err := e.o.Delete(ctx, filepath.Join(d, "rootfs")); err != nil {
			t.Fatal(err)
		}
	}
	if ids := e.layers(t); len(ids) != 0 {
		t.Errorf("layers left: %v", ids)
	}
	assertNoLoops(t, filepath.Dir(e.root))
}

// TestOverlayDiskKilled: a limit change or a snapshot of a limited tree
// killed -9 at any step leaves the old or the new tree (data and marks
// whole), what it built under a temporary name, and no loop device.
func TestOverlayDiskKilled(t *testing.T) {
	cases := []struct{ op, step, from, to string }{
		{"overlay-quota", "quota-built", "0", "32"},
		{"overlay-quota", "quota-swapped", "0", "32"},
		{"overlay-quota", "quota-built", "32", "24"},
		{"overlay-quota", "quota-swapped", "32", "0"},
		{"overlay-snapshot", "intent", "32", ""},
		{"overlay-snapshot", "layer", "32", ""},
		{"overlay-snapshot", "exchange", "32", ""},
	}
	for _, c := range cases {
		t.Run(c.op+"-"+c.step+"-"+c.from+"-"+c.to, func(t *testing.T) {
			e := needDiskTools(t)
			ctx := context.Background()
			c1 := e.container(t, "c1")
			rootfs := filepath.Join(c1, "rootfs")
			e.edit(t, c1, "a")
			from, _ := strconv.Atoi(c.from)
			if err := e.o.SetQuota(ctx, rootfs, int64(from)*mb); err != nil {
				t.Fatal(err)
			}
			dst := c.to
			if c.op == "overlay-snapshot" {
				dst = filepath.Join(e.snapDir(t, c1, "s1"), "rootfs")
			}
			killOverlayAt(t, e, c.op, rootfs, dst, c.step)
			if got := e.listing(t, c1); got != editedListing {
				t.Errorf("after a kill at %s: %q, want %q", c.step, got, editedListing)
			}
			n, err := diskSize(rootfs)
			if c.op == "overlay-quota" && (err != nil || (n != int64(from)*mb && c.to != strconv.FormatInt(n/mb, 10))) {
				t.Errorf("after a kill at %s the image is %d bytes (%v): neither old nor new", c.step, n, err)
			}
			if tr, err := ReadTree(rootfs); err != nil {
				t.Fatal(err)
			} else if len(tr.Layers) > 0 { // frozen: the marks moved to the layer
				checkMarks(t, e.o.layerPath(tr.Layers[0]))
			} else {
				checkUpperMarks(t, rootfs)
			}
			if err := RemoveStale(c1); err != nil {
				t.Fatal(err)
			}
			assertNoTemp(t, c1)
			if err := e.o.GC(); err != nil {
				t.Fatal(err)
			}
			assertNoLoops(t, filepath.Dir(e.root))
		})
	}
}

// TestOverlayDiskGrowFinished: an online grow killed after it grew the
// image and before the filesystem leaves a filesystem smaller than its
// image; setting the same limit again (as start does) rebuilds the tree at
// the image's size, data kept.
func TestOverlayDiskGrowFinished(t *testing.T) {
	e := needDiskTools(t)
	ctx := context.Background()
	c1 := e.container(t, "c1")
	rootfs := filepath.Join(c1, "rootfs")
	e.edit(t, c1, "a")
	if err := e.o.SetQuota(ctx, rootfs, 24*mb); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filepath.Join(rootfs, DiskImage), 40*mb); err != nil { // what growOnline does first
		t.Fatal(err)
	}
	if st := e.statfsView(t, c1); int64(st.Blocks)*st.Bsize > 24*mb {
		t.Fatalf("the filesystem grew by itself: %d bytes", int64(st.Blocks)*st.Bsize)
	}
	if err := e.o.SetQuota(ctx, rootfs, 40*mb); err != nil {
		t.Fatal(err)
	}
	if st := e.statfsView(t, c1); int64(st.Blocks)*st.Bsize < 32*mb {
		t.Errorf("the interrupted grow was not finished: %d bytes", int64(st.Blocks)*st.Bsize)
	}
	if got := e.listing(t, c1); got != editedListing {
		t.Errorf("after finishing the grow: %q", got)
	}
	checkUpperMarks(t, rootfs)
	assertNoTemp(t, c1)
}
