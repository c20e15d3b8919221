package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// overlayEnv is a lodge root with an image outside it, as a shared image
// cache is.
type overlayEnv struct {
	root, image string
	o           Overlay
}

func newOverlayEnv(t *testing.T) *overlayEnv {
	needRoot(t)
	if err := overlaySupported(); err != nil {
		t.Skipf("overlay cannot run here: %v", err)
	}
	base := t.TempDir()
	e := &overlayEnv{root: filepath.Join(base, "root"), image: filepath.Join(base, "cache", "img", "rootfs")}
	e.o = Overlay{root: e.root}
	for _, d := range []string{e.image + "/etc", e.image + "/lowerdir/sub", filepath.Join(e.root, "containers")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, data := range map[string]string{"etc/hostname": "image\n", "etc/delete-me": "x", "lowerdir/sub/f": "in lower dir"} {
		if err := os.WriteFile(filepath.Join(e.image, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// container makes containers/NAME with an overlay rootfs on the image.
func (e *overlayEnv) container(t *testing.T, name string) string {
	dir := filepath.Join(e.root, "containers", name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := WriteRecord(dir, Record{Backend: OverlayName}); err != nil {
		t.Fatal(err)
	}
	if err := e.o.Create(context.Background(), e.image, filepath.Join(dir, "rootfs"), Options{}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// snapDir is containers/NAME/snapshots/SNAP, with the record a view needs.
func (e *overlayEnv) snapDir(t *testing.T, ct, snap string) string {
	dir := filepath.Join(ct, "snapshots", snap)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := WriteRecord(dir, Record{Backend: OverlayName}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// edit changes a container's merged root through a writable view: a new
// file, a lower file deleted (whiteout), a lower directory replaced by an
// empty one (opaque).
func (e *overlayEnv) edit(t *testing.T, ct, newFile string) {
	t.Helper()
	v, err := OpenView(e.root, ct, true)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if err := os.WriteFile(filepath.Join(v.Dir, newFile), []byte(newFile), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(v.Dir, "etc/delete-me"))
	if _, err := os.Stat(filepath.Join(v.Dir, "lowerdir/sub")); err == nil {
		if err := os.RemoveAll(filepath.Join(v.Dir, "lowerdir")); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(filepath.Join(v.Dir, "lowerdir"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// listing is every path of a container's merged root, read through a
// read-only view.
func (e *overlayEnv) listing(t *testing.T, ct string) string {
	t.Helper()
	v, err := OpenView(e.root, ct, false)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	var paths []string
	// Dir is a magic link to the mount: walk below it, not the link.
	err = filepath.WalkDir(v.Dir+"/", func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(v.Dir+"/", p)
		paths = append(paths, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(paths)
	return strings.Join(paths, " ")
}

const (
	imageListing  = ". etc etc/delete-me etc/hostname lowerdir lowerdir/sub lowerdir/sub/f"
	editedListing = ". a etc etc/hostname lowerdir"
)

func (e *overlayEnv) layers(t *testing.T) []string {
	entries, err := os.ReadDir(e.o.layersDir())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var ids []string
	for _, en := range entries {
		ids = append(ids, en.Name())
	}
	return ids
}

func inode(t *testing.T, path string) uint64 {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// checkMarks asserts that layer dir holds the whiteout of etc/delete-me
// (char device 0/0) and lowerdir marked opaque.
func checkMarks(t *testing.T, dir string) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(dir, "etc/delete-me"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("%s: etc/delete-me is not a whiteout (mode %o rdev %d, %v)", dir, st.Mode, st.Rdev, err)
	}
	buf := make([]byte, 8)
	n, err := unix.Lgetxattr(filepath.Join(dir, "lowerdir"), "user.overlay.opaque", buf)
	if err != nil || string(buf[:n]) != "y" {
		t.Errorf("%s: lowerdir is not opaque (%q, %v)", dir, buf[:max(n, 0)], err)
	}
}

// TestOverlayLifecycle: create, edit, snapshot and clone in O(1) (the upper
// is moved, not copied), whiteouts and opaque directories kept, restore,
// and layers collected once no tree names them.
func TestOverlayLifecycle(t *testing.T) {
	e := newOverlayEnv(t)
	ctx := context.Background()
	c1 := e.container(t, "c1")
	rootfs := filepath.Join(c1, "rootfs")
	if got := e.listing(t, c1); got != imageListing {
		t.Fatalf("new container = %q, want %q", got, imageListing)
	}
	e.edit(t, c1, "a")
	if got := e.listing(t, c1); got != editedListing {
		t.Fatalf("edited = %q, want %q", got, editedListing)
	}
	checkMarks(t, filepath.Join(rootfs, "upper"))
	upperIno := inode(t, filepath.Join(rootfs, "upper"))

	s1 := e.snapDir(t, c1, "s1")
	if err := e.o.Snapshot(ctx, rootfs, filepath.Join(s1, "rootfs"), Options{}); err != nil {
		t.Fatal(err)
	}
	ids := e.layers(t)
	if len(ids) != 1 {
		t.Fatalf("layers after snapshot: %v", ids)
	}
	if got := inode(t, e.o.layerPath(ids[0])); got != upperIno {
		t.Errorf("snapshot copied the upper (inode %d, was %d): not O(1)", got, upperIno)
	}
	checkMarks(t, e.o.layerPath(ids[0]))
	if empty, _ := upperEmpty(rootfs, filepath.Join(rootfs, "upper")); !empty {
		t.Error("the source's upper is not empty after the freeze")
	}
	for _, d := range []string{c1, s1} {
		if got := e.listing(t, d); got != editedListing {
			t.Errorf("%s after snapshot = %q, want %q", d, got, editedListing)
		}
	}
	// CoW clone of the stopped container: no data copied either.
	c2 := e.container(t, "c2")
	os.RemoveAll(filepath.Join(c2, "rootfs"))
	e.edit(t, c1, "b")
	if err := e.o.Clone(ctx, rootfs, filepath.Join(c2, "rootfs"), Options{CopyOnWrite: true}); err != nil {
		t.Fatal(err)
	}
	if got := e.listing(t, c2); got != ". a b etc etc/hostname lowerdir" {
		t.Errorf("clone = %q", got)
	}
	// Live snapshot: copied into a layer, marks kept, source untouched.
	e.edit(t, c1, "c")
	before := inode(t, filepath.Join(rootfs, "upper"))
	s2 := e.snapDir(t, c1, "s2")
	if err := e.o.Snapshot(ctx, rootfs, filepath.Join(s2, "rootfs"), Options{Live: true}); err != nil {
		t.Fatal(err)
	}
	if inode(t, filepath.Join(rootfs, "upper")) != before {
		t.Error("a live snapshot changed the source's upper")
	}
	s2tree, _ := ReadTree(filepath.Join(s2, "rootfs"))
	if got := e.listing(t, s2); got != ". a b c etc etc/hostname lowerdir" {
		t.Errorf("live snapshot = %q", got)
	}
	// Full clone: the upper copied, the marks with it.
	c3 := filepath.Join(e.root, "containers", "c3")
	os.MkdirAll(c3, 0o700)
	WriteRecord(c3, Record{Backend: OverlayName})
	if err := e.o.Clone(ctx, filepath.Join(s2, "rootfs"), filepath.Join(c3, "rootfs"), Options{}); err != nil {
		t.Fatal(err)
	}
	if got := e.listing(t, c3); got != ". a b c etc etc/hostname lowerdir" {
		t.Errorf("full clone = %q", got)
	}
	// Restore the first snapshot: a, no b or c.
	if err := e.o.Restore(ctx, filepath.Join(s1, "rootfs"), rootfs, Options{}); err != nil {
		t.Fatal(err)
	}
	if got := e.listing(t, c1); got != editedListing {
		t.Errorf("restored = %q, want %q", got, editedListing)
	}
	assertNoTemp(t, c1)
	if got := e.listing(t, s2); got != ". a b c etc etc/hostname lowerdir" {
		t.Errorf("other snapshot after restore = %q", got)
	}
	if users, err := ImageUsers(e.root, e.image); err != nil || len(users) != 5 {
		t.Errorf("image users = %v, %v; want 5 trees", users, err)
	}
	// Delete everything: every layer is collected.
	for _, p := range []string{filepath.Join(s1, "rootfs"), filepath.Join(s2, "rootfs"), rootfs, filepath.Join(c2, "rootfs")} {
		if err := e.o.Delete(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	// c3 is a full copy of s2: its own upper over s2's lowers.
	want := append([]string(nil), s2tree.Layers...)
	sort.Strings(want)
	if ids := e.layers(t); strings.Join(ids, " ") != strings.Join(want, " ") {
		t.Errorf("layers left with only c3 = %v, want s2's lowers %v", ids, want)
	}
	if err := e.o.Delete(ctx, filepath.Join(c3, "rootfs")); err != nil {
		t.Fatal(err)
	}
	if ids := e.layers(t); len(ids) != 0 {
		t.Errorf("layers left after deleting every tree: %v", ids)
	}
	if err := e.o.Delete(ctx, filepath.Join(c3, "rootfs")); err != nil {
		t.Errorf("second delete: %v", err)
	}
}

// TestOverlayLiveSnapshotKeepsMarks: a running container's upper copied
// into a layer keeps its whiteouts (char 0/0) and opaque directories.
func TestOverlayLiveSnapshotKeepsMarks(t *testing.T) {
	e := newOverlayEnv(t)
	c1 := e.container(t, "c1")
	e.edit(t, c1, "a")
	s1 := e.snapDir(t, c1, "s1")
	if err := e.o.Snapshot(context.Background(), filepath.Join(c1, "rootfs"), filepath.Join(s1, "rootfs"), Options{Live: true}); err != nil {
		t.Fatal(err)
	}
	tr, err := ReadTree(filepath.Join(s1, "rootfs"))
	if err != nil || len(tr.Layers) != 1 {
		t.Fatalf("snapshot tree %+v, %v", tr, err)
	}
	checkMarks(t, e.o.layerPath(tr.Layers[0]))
	checkMarks(t, filepath.Join(c1, "rootfs", "upper")) // the source untouched
	if got := e.listing(t, s1); got != editedListing {
		t.Errorf("live snapshot = %q", got)
	}
}

// TestOverlayChainLimit: a tree is refused beyond overlay's lower limit.
func TestOverlayChainLimit(t *testing.T) {
	e := newOverlayEnv(t)
	tr := Tree{Image: e.image, Layers: make([]string, MaxLowerLayers-1)}
	err := makeOverlayTree(filepath.Join(t.TempDir(), "x"), tr, nil)
	if err == nil || !strings.Contains(err.Error(), "limit of 500") {
		t.Errorf("err = %v", err)
	}
	// The longest chain allowed mounts, read-only view included.
	tr.Layers = tr.Layers[:MaxLowerLayers-2]
	for i := range tr.Layers {
		tr.Layers[i] = fmt.Sprintf("l%03d", i)
		if err := os.MkdirAll(e.o.layerPath(tr.Layers[i]), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ct := filepath.Join(e.root, "containers", "deep")
	os.MkdirAll(ct, 0o700)
	WriteRecord(ct, Record{Backend: OverlayName})
	if err := e.o.placeTree(filepath.Join(ct, "rootfs"), tr, nil); err != nil {
		t.Fatal(err)
	}
	if got := e.listing(t, ct); got != imageListing {
		t.Errorf("deepest tree = %q", got)
	}
}

// killOverlayChild runs an overlay operation ($ROOT, $SRC, $DST) that stops
// at step $STEP (stepHook), announces it and waits to be killed.
func killOverlayChild(op string) int {
	step := os.Getenv("STEP")
	stepHook = func(s string) {
		if s == step {
			fmt.Println("reached", s)
			time.Sleep(time.Hour)
		}
	}
	o := Overlay{root: os.Getenv("ROOT")}
	ctx := context.Background()
	var err error
	switch op {
	case "overlay-snapshot":
		err = o.Snapshot(ctx, os.Getenv("SRC"), os.Getenv("DST"), Options{})
	case "overlay-restore":
		err = o.Restore(ctx, os.Getenv("SRC"), os.Getenv("DST"), Options{})
	case "overlay-quota": // DST is the new limit in MiB
		n, _ := strconv.ParseInt(os.Getenv("DST"), 10, 64)
		err = o.SetQuota(ctx, os.Getenv("SRC"), n<<20)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("finished without reaching", step)
	return 0
}

// killOverlayAt runs op in a child and kills it with SIGKILL at step.
func killOverlayAt(t *testing.T, e *overlayEnv, op, src, dst, step string) {
	t.Helper()
	line, _, err := runKilled(t, op, "ROOT="+e.root, "SRC="+src, "DST="+dst, "STEP="+step)
	if err != nil || !strings.HasPrefix(line, "reached") {
		t.Fatalf("%s child did not reach step %s: %q %v", op, step, line, err)
	}
}

// TestOverlayKilledLeavesOldOrNew: a snapshot (the O(1) freeze of a stopped
// container's upper) or a restore killed -9 between any two of its steps
// leaves the container's tree whole, with its content either before or
// after, and the snapshot either absent or complete; the next operation
// (here a view) finishes or undoes the freeze, and gc leaves no layer behind.
func TestOverlayKilledLeavesOldOrNew(t *testing.T) {
	for _, step := range []string{"intent", "layer", "exchange", "dst"} {
		t.Run("snapshot-"+step, func(t *testing.T) {
			e := newOverlayEnv(t)
			c1 := e.container(t, "c1")
			e.edit(t, c1, "a")
			s1 := e.snapDir(t, c1, "s1")
			killOverlayAt(t, e, "overlay-snapshot", filepath.Join(c1, "rootfs"), filepath.Join(s1, "rootfs"), step)
			if got := e.listing(t, c1); got != editedListing {
				t.Errorf("container after a snapshot killed at %s = %q, want %q", step, got, editedListing)
			}
			if _, err := os.Lstat(filepath.Join(s1, "rootfs")); err == nil {
				if got := e.listing(t, s1); got != editedListing {
					t.Errorf("snapshot killed at %s = %q", step, got)
				}
			}
			for _, d := range []string{c1, s1} {
				if err := RemoveStale(d); err != nil {
					t.Fatal(err)
				}
				assertNoTemp(t, d)
			}
			if intents, _ := os.ReadDir(e.o.intentsDir()); len(intents) != 0 {
				t.Errorf("intents left: %v", intents)
			}
			// Every layer left is one a tree names.
			os.RemoveAll(filepath.Join(s1, "rootfs"))
			if err := e.o.Delete(context.Background(), filepath.Join(c1, "rootfs")); err != nil {
				t.Fatal(err)
			}
			if ids := e.layers(t); len(ids) != 0 {
				t.Errorf("layers left after deleting every tree: %v", ids)
			}
		})
	}
	for _, step := range []string{"restore-built", "restore-swapped"} {
		t.Run(step, func(t *testing.T) {
			e := newOverlayEnv(t)
			c1 := e.container(t, "c1")
			e.edit(t, c1, "a")
			s1 := e.snapDir(t, c1, "s1")
			if err := e.o.Snapshot(context.Background(), filepath.Join(c1, "rootfs"), filepath.Join(s1, "rootfs"), Options{}); err != nil {
				t.Fatal(err)
			}
			e.edit(t, c1, "b")
			killOverlayAt(t, e, "overlay-restore", filepath.Join(s1, "rootfs"), filepath.Join(c1, "rootfs"), step)
			got := e.listing(t, c1)
			if got != editedListing && got != ". a b etc etc/hostname lowerdir" {
				t.Errorf("container after a restore killed at %s = %q", step, got)
			}
			if err := RemoveStale(c1); err != nil {
				t.Fatal(err)
			}
			assertNoTemp(t, c1)
			if got := e.listing(t, s1); got != editedListing {
				t.Errorf("snapshot after a restore killed at %s = %q", step, got)
			}
		})
	}
}

// TestChooseOverlay: auto picks overlay for a root on ext4 (this host's
// root filesystem) where the kernel supports it, and dir for a root on
// overlayfs, whose directories cannot be idmapped layers, saying why.
func TestChooseOverlay(t *testing.T) {
	e := newOverlayEnv(t)
	var st unix.Statfs_t
	if err := unix.Statfs(e.root, &st); err != nil {
		t.Fatal(err)
	}
	if overlayUpperFS(st.Type) != nil || st.Type == unix.BTRFS_SUPER_MAGIC {
		t.Skipf("the test directory is on %s, not a filesystem auto puts overlay on", fsName(e.root))
	}
	if c, err := Choose("auto", e.root); err != nil || c.Backend != OverlayName {
		t.Errorf("auto on %s = %+v, %v; want overlay", fsName(e.root), c, err)
	}
	base := t.TempDir()
	for _, d := range []string{"lower", "upper", "work", "merged"} {
		os.Mkdir(filepath.Join(base, d), 0o755)
	}
	merged := filepath.Join(base, "merged")
	if err := unix.Mount("overlay", merged, "overlay", 0, "lowerdir="+base+"/lower,upperdir="+base+"/upper,workdir="+base+"/work"); err != nil {
		t.Fatalf("mount an overlayfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(merged, unix.MNT_DETACH) })
	c, err := Choose("auto", merged)
	if err != nil || c.Backend != DirName || !strings.Contains(c.Reason, "idmapped") {
		t.Errorf("auto on overlayfs = %+v, %v; want dir with the reason", c, err)
	}
}
