package storage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"golang.org/x/sys/unix"

	"lodge/internal/atomicfile"
)

// OverlayName is the overlay backend's name.
const OverlayName = overlayName

// MaxLowerLayers is overlayfs's limit on lower layers (OVL_MAX_STACK).
const MaxLowerLayers = 500

// LayersFile is the file of an overlay tree naming its lower layers.
const LayersFile = "layers.json"

// Overlay is the overlay backend. A tree at P is a directory holding
//
//	P/upper        the container's own changes (natural ids, whiteouts, user.overlay.* xattrs)
//	P/work         overlay's work directory (same filesystem as upper)
//	P/layers.json  the read-only lower layers, topmost first
//
// or, under limits.disk, upper and work inside P/disk.img, an ext4 image of
// the limit's size (see overlaydisk.go and OpenUpperDir).
//
// The lowers are shared immutable layers ROOT/storage/overlay/layers/ID
// (former uppers, frozen by a clone or snapshot) above the image's root
// filesystem directory, which may live outside ROOT (an image cache). The
// container's root is the overlay of all of them, mounted at start by the
// container itself (see storage/overlay and docs/storage-overlay.md).
//
// Nothing ever writes a shared layer after it is frozen, and a layer is
// removed only when no tree names it any more (gc), so trees sharing layers
// are independent of each other.
type Overlay struct{ root string }

var _ Backend = Overlay{}

// NewOverlay returns the overlay backend for the lodge root root.
func NewOverlay(root string) (Backend, error) { return Overlay{root: root}, nil }

// Name implements Backend.
func (Overlay) Name() string { return OverlayName }

// Tree is what layers.json says: the lower layers of an overlay tree.
type Tree struct {
	Layers []string `json:"layers"` // ids of shared layers, topmost first
	Image  string   `json:"image"`  // the image's root filesystem directory, the bottom layer
}

// Lowers are the absolute paths of the tree's lower layers, topmost first.
func (o Overlay) Lowers(t Tree) []string {
	var l []string
	for _, id := range t.Layers {
		l = append(l, o.layerPath(id))
	}
	return append(l, t.Image)
}

func (o Overlay) dir() string                { return filepath.Join(o.root, "storage", OverlayName) }
func (o Overlay) layersDir() string          { return filepath.Join(o.dir(), "layers") }
func (o Overlay) layerPath(id string) string { return filepath.Join(o.layersDir(), id) }
func (o Overlay) intentsDir() string         { return filepath.Join(o.dir(), "intents") }

// ReadTree reads the layers of the overlay tree at path.
func ReadTree(path string) (Tree, error) {
	data, err := os.ReadFile(filepath.Join(path, LayersFile))
	if err != nil {
		return Tree{}, fmt.Errorf("overlay tree %s: %w", path, err)
	}
	var t Tree
	if err := json.Unmarshal(data, &t); err != nil {
		return Tree{}, fmt.Errorf("overlay tree %s: %s: %w", path, LayersFile, err)
	}
	if t.Image == "" {
		return Tree{}, fmt.Errorf("overlay tree %s: %s names no image", path, LayersFile)
	}
	return t, nil
}

// stepHook lets the kill tests stop an operation between two of its steps.
var stepHook = func(string) {}

// lock takes the backend's lock, which serialises every change of shared
// layers and their references (and the garbage collection that reads them),
// after finishing what an interrupted operation left (recover).
func (o Overlay) lock() (func(), error) {
	for _, d := range []string{o.layersDir(), o.intentsDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("overlay storage: %w", err)
		}
	}
	f, err := os.OpenFile(filepath.Join(o.dir(), "lock"), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("overlay storage lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("overlay storage lock: %w", err)
	}
	unlock := func() { f.Close() }
	if err := o.recover(); err != nil {
		unlock()
		return nil, err
	}
	return unlock, nil
}

// Recover finishes or undoes what an operation killed part way left, so that
// the tree at path is whole before it is mounted or read.
//
// Starts call it, so it takes the backend's lock only when an intent is
// there: a long copy under the lock must not hold up every start. No
// intent can appear for the tree being started meanwhile, since intents
// are written only by operations on a tree under its container's lock,
// which the caller holds.
func (o Overlay) Recover() error {
	entries, err := os.ReadDir(o.intentsDir())
	if errors.Is(err, os.ErrNotExist) || err == nil && len(entries) == 0 {
		return nil
	}
	unlock, err := o.lock()
	if err != nil {
		return err
	}
	unlock()
	return nil
}

// CheckQuota implements QuotaChecker: a limited tree needs mkfs.ext4 for
// its disk image.
func (o Overlay) CheckQuota(root string) error {
	if _, err := exec.LookPath("mkfs.ext4"); err != nil {
		return &QuotaError{Backend: OverlayName, Path: root, Reason: "a limited container keeps its changes on an ext4 image, and mkfs.ext4 is missing; install e2fsprogs"}
	}
	return nil
}

// Create implements Backend: an empty upper over the image, O(1).
func (o Overlay) Create(ctx context.Context, image, dst string, opts Options) error {
	abs, err := filepath.Abs(image)
	if err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Stat(abs, &st); err != nil {
		return fmt.Errorf("image root filesystem %s: %w", abs, err)
	}
	return o.placeTree(dst, Tree{Layers: []string{}, Image: abs}, &st)
}

// placeTree makes a tree with an empty upper over t's lowers at dst: built
// under a temporary name, synced, renamed into place.
func (o Overlay) placeTree(dst string, t Tree, rootMeta *unix.Stat_t) error {
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("make overlay tree %s: %w", dst, os.ErrExist)
	}
	tmp := tempPath(dst, "tree")
	if err := makeOverlayTree(tmp, t, rootMeta); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dst, unix.RENAME_NOREPLACE); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("move overlay tree into place at %s: %w", dst, err)
	}
	return nil
}

// makeOverlayTree makes a tree at path with an empty upper (whose owner and mode,
// those of the container's root directory, come from rootMeta) and work.
func makeOverlayTree(path string, t Tree, rootMeta *unix.Stat_t) error {
	// One lower is kept for the read-only view, which stacks the upper too.
	if len(t.Layers)+2 > MaxLowerLayers {
		return fmt.Errorf("overlay tree %s would have %d lower layers, and overlay's limit of %d must leave one for lodge's read-only view; "+
			"make a full copy instead (lodge copy without --snapshot) or use the btrfs or dir backend", path, len(t.Layers)+1, MaxLowerLayers)
	}
	if err := os.Mkdir(path, 0o755); err != nil {
		return fmt.Errorf("make overlay tree: %w", err)
	}
	upper := filepath.Join(path, "upper")
	for _, d := range []string{upper, filepath.Join(path, "work")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return fmt.Errorf("make overlay tree: %w", err)
		}
	}
	if rootMeta != nil {
		if err := os.Lchown(upper, int(rootMeta.Uid), int(rootMeta.Gid)); err != nil {
			return err
		}
		if err := os.Chmod(upper, os.FileMode(rootMeta.Mode&0o777)|modeBits(rootMeta.Mode)); err != nil {
			return err
		}
	}
	// The tree holds no data, only entries: the write's sync of the tree's
	// directory commits them (and, on a journalling filesystem, the owner
	// and mode set above) without the syncfs a copy needs, which would wait
	// for every dirty page of the host's filesystem.
	if err := WriteTree(path, t); err != nil {
		return fmt.Errorf("make overlay tree: %w", err)
	}
	return nil
}

func modeBits(m uint32) os.FileMode {
	var fm os.FileMode
	if m&unix.S_ISUID != 0 {
		fm |= os.ModeSetuid
	}
	if m&unix.S_ISGID != 0 {
		fm |= os.ModeSetgid
	}
	if m&unix.S_ISVTX != 0 {
		fm |= os.ModeSticky
	}
	return fm
}

// Clone implements Backend. With CopyOnWrite, O(1): the source's upper is
// frozen into a shared layer (or copied into one when opts.Live), and source
// and clone each get an empty upper over it. Without CopyOnWrite the upper is
// copied into the clone's own upper, and the clone shares only the image and
// the frozen layers below, which are immutable and kept as long as a tree
// names them: nothing done to the source (writes, snapshots, restores,
// delete) changes what the clone sees, so it is independent.
func (o Overlay) Clone(ctx context.Context, src, dst string, opts Options) error {
	if opts.CopyOnWrite {
		return o.Snapshot(ctx, src, dst, opts)
	}
	t, err := ReadTree(src)
	if err != nil {
		return err
	}
	unlock, err := o.lock()
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("copy %s to %s: %w", src, dst, os.ErrExist)
	}
	if err := o.cloneTree(ctx, src, dst, t, opts); err != nil {
		return err
	}
	return nil
}

// cloneTree makes dst a full copy of the tree at src (lowers shared, upper
// copied), on a disk image of the source's size if the source has one.
func (o Overlay) cloneTree(ctx context.Context, src, dst string, t Tree, opts Options) error {
	size, err := diskSize(src)
	if err != nil {
		return err
	}
	srcUpper, err := OpenUpperDir(src)
	if err != nil {
		return err
	}
	defer srcUpper.Close()
	from := filepath.Join(srcUpper.Dir, "upper")
	fill := func(dir string) error { return copyInto(ctx, from, filepath.Join(dir, "upper"), opts, false) }
	tmp := tempPath(dst, "copy")
	if err := makeOverlayTree(tmp, t, nil); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if size > 0 {
		err = limitTree(tmp, size, func(dir string) error { return fillUpper(ctx, src, from, dir, size) })
	} else if err = os.Remove(filepath.Join(tmp, "upper")); err == nil {
		err = fill(tmp)
	}
	if err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dst, unix.RENAME_NOREPLACE); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("move copy of %s into place at %s: %w", src, dst, err)
	}
	return nil
}

// Snapshot implements Backend: a tree at snap with an empty upper over the
// source's current state. A stopped source's upper is frozen in O(1) (renamed
// into a shared layer, the source continuing on an empty upper above it); a
// running one's (opts.Live) is copied into the new layer and the source is
// not touched.
func (o Overlay) Snapshot(ctx context.Context, src, snap string, opts Options) error {
	unlock, err := o.lock()
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := os.Lstat(snap); err == nil {
		return fmt.Errorf("snapshot %s to %s: %w", src, snap, os.ErrExist)
	}
	if opts.Live {
		return o.copyLayer(ctx, src, snap, opts)
	}
	return o.freeze(ctx, src, snap)
}

// upperEmpty says whether the upper directory upper of the tree at path
// has no changes.
func upperEmpty(path, upper string) (bool, error) {
	names, err := readNames(upper)
	if err != nil {
		return false, fmt.Errorf("overlay tree %s: %w", path, err)
	}
	return len(names) == 0, nil
}

func newLayerID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// intent is written before a freeze moves a source's upper, so that recover
// can finish or undo a freeze killed part way (see freeze).
type intent struct {
	Src    string `json:"src"`
	Layer  string `json:"layer"`
	TmpSrc string `json:"tmp_src"`
	TmpDst string `json:"tmp_dst,omitempty"`
	Dst    string `json:"dst,omitempty"`
	// Copied: the source has a disk image, from which the upper is
	// copied into the layer, not renamed (another filesystem).
	Copied bool `json:"copied,omitempty"`
}

// freeze makes src's upper a shared layer L, src an empty upper over L and
// its old lowers, and (if dst is not "") dst the same. The steps, with the
// state a kill -9 after each leaves (recover repairs it):
//
//  1. build tmpSrc and tmpDst (empty uppers over [L]+lowers), write the intent: old
//  2. rename src/upper to layers/L: recover moves it back (old)
//  3. exchange tmpSrc and src: new for src; recover moves tmpDst to dst (new)
//  4. rename tmpDst to dst, remove the intent and the old tree: new
//
// A source with a disk image (limits.disk) keeps one: tmpSrc gets a new
// empty image of the same size, and step 2 copies the upper into layers/L
// (copyTree: complete before it has that name) instead of renaming it
// across filesystems; recover then undoes step 2 by removing the copy.
func (o Overlay) freeze(ctx context.Context, src, dst string) error {
	size, err := diskSize(src)
	if err != nil {
		return err
	}
	su, err := openSourceUpper(src)
	if err != nil {
		return err
	}
	defer su.view.Close()
	t, upper, st := su.tree, su.path, su.st
	if su.empty {
		if dst != "" {
			return o.placeTree(dst, t, &st) // nothing to freeze: share the lowers
		}
		return nil
	}
	id := newLayerID()
	nt := Tree{Layers: append([]string{id}, t.Layers...), Image: t.Image}
	in := intent{Src: src, Layer: id, TmpSrc: tempPath(src, "freeze"), Copied: size > 0}
	if dst != "" {
		in.Dst, in.TmpDst = dst, tempPath(dst, "tree")
	}
	undo := func() { os.RemoveAll(in.TmpSrc); os.RemoveAll(in.TmpDst) }
	if err := makeLayerTree(in.TmpSrc, nt, &st, size); err != nil {
		undo()
		return err
	}
	if dst != "" {
		if err := makeOverlayTree(in.TmpDst, nt, &st); err != nil {
			undo()
			return err
		}
	}
	if err := o.writeIntent(in); err != nil {
		undo()
		return err
	}
	stepHook("intent")
	if in.Copied {
		err = copyTree(ctx, upper, o.layerPath(id), Options{}, false)
	} else {
		err = os.Rename(upper, o.layerPath(id))
	}
	if err != nil {
		o.removeIntent(id)
		undo()
		return fmt.Errorf("freeze the upper layer of %s: %w", src, err)
	}
	stepHook("layer")
	if err := unix.Renameat2(unix.AT_FDCWD, in.TmpSrc, unix.AT_FDCWD, src, unix.RENAME_EXCHANGE); err != nil {
		rerr := o.recover()
		return errors.Join(fmt.Errorf("give %s its new upper layer: %w", src, err), rerr)
	}
	stepHook("exchange")
	su.view.Close() // the old image's filesystem, before finishFreeze removes its file
	return o.finishFreeze(in)
}

// finishFreeze does a freeze's last step once src has its new tree.
func (o Overlay) finishFreeze(in intent) error {
	var err error
	if in.TmpDst != "" {
		if _, serr := os.Lstat(in.TmpDst); serr == nil {
			err = unix.Renameat2(unix.AT_FDCWD, in.TmpDst, unix.AT_FDCWD, in.Dst, unix.RENAME_NOREPLACE)
			if err != nil {
				os.RemoveAll(in.TmpDst)
				err = fmt.Errorf("move %s into place: %w", in.Dst, err)
			}
		}
	}
	stepHook("dst")
	if rerr := o.removeIntent(in.Layer); rerr != nil {
		return errors.Join(err, rerr)
	}
	return errors.Join(err, os.RemoveAll(in.TmpSrc))
}

func (o Overlay) writeIntent(in intent) error {
	data, err := json.Marshal(in)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(o.intentsDir(), in.Layer+".json"), data, 0o600); err != nil {
		return fmt.Errorf("record overlay freeze: %w", err)
	}
	return nil
}

func (o Overlay) removeIntent(id string) error {
	if err := os.Remove(filepath.Join(o.intentsDir(), id+".json")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// recover finishes or undoes every freeze an interrupted process left (see
// freeze). It runs under the lock.
func (o Overlay) recover() error {
	entries, err := os.ReadDir(o.intentsDir())
	if err != nil {
		return fmt.Errorf("overlay storage: %w", err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue // an atomicfile temporary of an interrupted write
		}
		data, err := os.ReadFile(filepath.Join(o.intentsDir(), e.Name()))
		if err != nil {
			return err
		}
		var in intent
		if err := json.Unmarshal(data, &in); err != nil {
			return fmt.Errorf("overlay storage: intent %s: %w", e.Name(), err)
		}
		if err := o.recoverOne(in); err != nil {
			return fmt.Errorf("overlay storage: finish an interrupted freeze of %s: %w", in.Src, err)
		}
	}
	return nil
}

func (o Overlay) recoverOne(in intent) error {
	layer := o.layerPath(in.Layer)
	if _, err := os.Lstat(layer); errors.Is(err, os.ErrNotExist) { // step 2 not done
		os.RemoveAll(in.TmpSrc)
		os.RemoveAll(in.TmpDst)
		return o.removeIntent(in.Layer)
	}
	t, err := ReadTree(in.Src)
	if err != nil {
		return err
	}
	if len(t.Layers) == 0 || t.Layers[0] != in.Layer { // step 3 not done: undo step 2
		undo := func() error { return os.Rename(layer, filepath.Join(in.Src, "upper")) }
		if in.Copied { // the source still has its upper: drop the copy
			undo = func() error { return os.RemoveAll(layer) }
		}
		if err := undo(); err != nil {
			return err
		}
		os.RemoveAll(in.TmpSrc)
		os.RemoveAll(in.TmpDst)
		return o.removeIntent(in.Layer)
	}
	return o.finishFreeze(in)
}

// copyLayer snapshots a running container's tree: its upper is copied into
// a new shared layer (whiteouts and user.overlay.* xattrs included), and snap
// gets an empty upper over it. The source is not touched.
func (o Overlay) copyLayer(ctx context.Context, src, snap string, opts Options) error {
	su, err := openSourceUpper(src)
	if err != nil {
		return err
	}
	defer su.view.Close()
	if su.empty {
		return o.placeTree(snap, su.tree, &su.st)
	}
	id := newLayerID()
	if err := copyTree(ctx, su.path, o.layerPath(id), opts, false); err != nil {
		return fmt.Errorf("copy the upper layer of %s: %w", src, err)
	}
	// Killed here, the layer is named by no tree: the next gc removes it.
	return o.placeTree(snap, Tree{Layers: append([]string{id}, su.tree.Layers...), Image: su.tree.Image}, &su.st)
}

// sourceUpper is what freeze and copyLayer read of a tree before taking
// its upper layer.
type sourceUpper struct {
	tree  Tree
	view  *View       // the upper's directory, on the tree's disk image if it has one
	path  string      // the upper layer
	st    unix.Stat_t // the upper's owner and mode: the new tree's root keeps them
	empty bool        // nothing to take: the new tree shares the lowers
}

// openSourceUpper opens the upper layer of the tree at src; the caller
// closes its view.
func openSourceUpper(src string) (*sourceUpper, error) {
	t, err := ReadTree(src)
	if err != nil {
		return nil, err
	}
	view, err := OpenUpperDir(src)
	if err != nil {
		return nil, err
	}
	su := &sourceUpper{tree: t, view: view, path: filepath.Join(view.Dir, "upper")}
	if err := unix.Lstat(su.path, &su.st); err != nil {
		view.Close()
		return nil, fmt.Errorf("overlay tree %s: %w", src, err)
	}
	if su.empty, err = upperEmpty(src, su.path); err != nil {
		view.Close()
		return nil, err
	}
	return su, nil
}

// Restore implements Backend: a new tree with an empty upper over the
// snapshot's layers (the snapshot's own upper frozen first if it has changes)
// is built beside dst and exchanged with it in one renameat2; the old tree is
// then removed and layers nothing names any more are collected.
func (o Overlay) Restore(ctx context.Context, snap, dst string, opts Options) error {
	unlock, err := o.lock()
	if err != nil {
		return err
	}
	defer unlock()
	if err := o.freeze(ctx, snap, ""); err != nil {
		return err
	}
	t, err := ReadTree(snap)
	if err != nil {
		return err
	}
	st, err := upperMeta(snap)
	if err != nil {
		return err
	}
	// The restored tree keeps dst's disk limit (start applies limits.disk
	// of the restored configuration anyway).
	size, err := diskSize(dst)
	if err != nil {
		return err
	}
	tmp := tempPath(dst, "restore")
	if err := makeLayerTree(tmp, t, &st, size); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("restore %s from %s: %w", dst, snap, err)
	}
	stepHook("restore-built")
	err = unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dst, unix.RENAME_EXCHANGE)
	if errors.Is(err, unix.ENOENT) {
		err = unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dst, unix.RENAME_NOREPLACE)
	}
	if err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("restore %s from %s: swap in the restored tree: %w", dst, snap, err)
	}
	stepHook("restore-swapped")
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("restored %s, but removing the old tree %s: %w", dst, tmp, err)
	}
	return o.gc()
}

// Delete implements Backend: the tree is renamed aside and removed, then
// the shared layers no tree names any more are collected.
func (o Overlay) Delete(ctx context.Context, path string) error {
	unlock, err := o.lock()
	if err != nil {
		return err
	}
	defer unlock()
	if err := (Dir{}).Delete(ctx, path); err != nil {
		return err
	}
	return o.gc()
}

// GC removes the shared layers no overlay tree under the root names any more.
func (o Overlay) GC() error {
	unlock, err := o.lock()
	if err != nil {
		return err
	}
	defer unlock()
	return o.gc()
}

// gc runs under the lock. A layer is first renamed to a temporary name, so a
// gc killed while removing it leaves a name no tree uses, removed next time.
func (o Overlay) gc() error {
	used := map[string]bool{}
	trees, err := o.Trees()
	if err != nil {
		return err
	}
	for _, tr := range trees {
		for _, id := range tr.Tree.Layers {
			used[id] = true
		}
	}
	entries, err := os.ReadDir(o.layersDir())
	if err != nil {
		return fmt.Errorf("overlay storage: %w", err)
	}
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if used[name] {
			continue
		}
		path := filepath.Join(o.layersDir(), name)
		if !strings.HasPrefix(name, TempPrefix) {
			tmp := tempPath(path, "gc")
			if err := os.Rename(path, tmp); err != nil {
				errs = append(errs, err)
				continue
			}
			path = tmp
		}
		if err := os.RemoveAll(path); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("overlay storage: remove unused layers: %w", errors.Join(errs...))
	}
	return nil
}

// TreeRef is an overlay tree found under the root.
type TreeRef struct {
	Path string
	Tree Tree
}

// Trees lists every overlay tree under the root: the containers' root
// filesystems and snapshots, those of containers being made (ROOT/tmp), and
// the temporary trees of operations beside them (they may still be swapped
// in, so their layers count as used).
func (o Overlay) Trees() ([]TreeRef, error) {
	var refs []TreeRef
	for _, top := range []string{filepath.Join(o.root, "containers"), filepath.Join(o.root, "tmp")} {
		cts, err := os.ReadDir(top)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("overlay storage: list trees: %w", err)
		}
		for _, ct := range cts {
			dirs := []string{filepath.Join(top, ct.Name())}
			snaps, _ := os.ReadDir(filepath.Join(top, ct.Name(), "snapshots"))
			for _, s := range snaps {
				dirs = append(dirs, filepath.Join(top, ct.Name(), "snapshots", s.Name()))
			}
			for _, d := range dirs {
				found, err := treesIn(d)
				if err != nil {
					return nil, err
				}
				refs = append(refs, found...)
			}
		}
	}
	return refs, nil
}

// treesIn lists the overlay trees directly inside dir.
func treesIn(dir string) ([]TreeRef, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil // not a directory, or gone meanwhile
	}
	var refs []TreeRef
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		path := filepath.Join(dir, e.Name())
		if _, err := os.Lstat(filepath.Join(path, LayersFile)); err != nil {
			continue
		}
		t, err := ReadTree(path)
		if err != nil {
			return nil, err
		}
		refs = append(refs, TreeRef{Path: path, Tree: t})
	}
	return refs, nil
}

// ImageUsers lists the overlay trees under root that stand on the image whose
// root filesystem directory is image: deleting the image would break them.
func ImageUsers(root, image string) ([]string, error) {
	abs, err := filepath.Abs(image)
	if err != nil {
		return nil, err
	}
	refs, err := Overlay{root: root}.Trees()
	if err != nil {
		return nil, err
	}
	var users []string
	for _, r := range refs {
		if filepath.Clean(r.Tree.Image) == abs {
			users = append(users, r.Path)
		}
	}
	return users, nil
}

// Usage implements Backend: the space of the tree's own upper layer. The
// shared layers below are counted by none of the trees that share them
// (they belong to ROOT/storage/overlay/layers), nor is the image. For a
// tree with a disk image it is the image filesystem's used space (statfs:
// what counts against limits.disk and what df inside shows as used).
func (o Overlay) Usage(ctx context.Context, path string) (Usage, error) {
	u, err := OpenUpperDir(path)
	if err != nil {
		return Usage{}, err
	}
	defer u.Close()
	if u.mnt == nil {
		return Dir{}.Usage(ctx, filepath.Join(path, "upper"))
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(u.mnt.Fd()), &st); err != nil {
		return Usage{}, fmt.Errorf("disk usage of %s: %w", path, err)
	}
	return Usage{Bytes: int64(st.Blocks-st.Bfree) * st.Bsize, Inodes: int64(st.Files - st.Ffree)}, nil
}

// layerIDPattern is what a layer id may be: newLayerID's hex, or at least
// a single plain path element.
var layerIDPattern = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z_-]{0,63}$`)

// CheckLayerID refuses a layer id that is not a plain name: ids come from
// another host in a migration or a copy, and name directories here.
func CheckLayerID(id string) error {
	if !layerIDPattern.MatchString(id) {
		return fmt.Errorf("invalid layer id %q: a layer id is up to 64 letters, digits, '-' or '_'", id)
	}
	return nil
}

// WriteTree replaces the layers of the overlay tree at path with t's.
func WriteTree(path string, t Tree) error {
	data, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(path, LayersFile), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("overlay tree %s: %w", path, err)
	}
	return nil
}
