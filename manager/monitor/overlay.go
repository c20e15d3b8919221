package monitor

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"lodge/config"
	"lodge/rootfs"
	"lodge/storage"
	"lodge/storage/overlay"
)

// modeOverlay: the root is an overlay the container mounts itself from
// idmapped layers (docs/storage-overlay.md); files keep natural ids on disk.
const modeOverlay = "overlay"

// usesOverlay says whether the container's root filesystem was made by the
// overlay storage backend.
func (m *Monitor) usesOverlay() (bool, error) {
	rec, err := storage.ReadRecord(m.store.ContainerDir(m.name))
	if err != nil {
		return false, err
	}
	return rec.Backend == storage.OverlayName, nil
}

// overlayLayers hands the container the layers of its overlay root: each
// lower read-only and the tree holding upper and work writable, idmapped
// through the container's user namespace and attached on the stage as
// 0..n-1 (lowers topmost first, the tree last), from where they propagate to
// the child's mount namespace. It returns the child's copy of the directory
// holding them (opened through /proc/PID/root) and n: the child opens each
// layer below it (a message carries at most 253 descriptors, a chain up to
// 500 layers) and builds the overlay (overlayRoot).
func (m *Monitor) overlayLayers(cfg *config.Container, ch *child, stage *rootfs.Stage) (*os.File, int, error) {
	if rec, err := m.readShift(); err != nil || rec != nil || cfg.Rootfs.Shift == config.ShiftChown {
		if err != nil {
			return nil, 0, err
		}
		return nil, 0, fmt.Errorf("container %s has overlay storage, whose lower layers are shared with its image and with other containers and snapshots, "+
			"so its files cannot be chowned (rootfs.shift = %q): set rootfs.shift = \"auto\" or \"idmap\", "+
			"or make the container with the dir backend (storage.backend = \"dir\" in the host config)", m.name, cfg.Rootfs.Shift)
	}
	o, err := storage.NewOverlay(m.store.Root)
	if err != nil {
		return nil, 0, err
	}
	ov := o.(storage.Overlay)
	if err := ov.Recover(); err != nil {
		return nil, 0, err
	}
	path := m.store.RootfsPath(m.name)
	t, err := storage.ReadTree(path)
	if err != nil {
		return nil, 0, err
	}
	userns, err := ch.userns()
	if err != nil {
		return nil, 0, err
	}
	defer userns.Close()
	// The tree's upper and work directories: the tree itself, or the
	// mounted disk image of a tree with limits.disk. Its idmapped clone
	// keeps the filesystem (and its loop device) while the container runs.
	upper, err := storage.OpenUpperDir(path)
	if err != nil {
		return nil, 0, err
	}
	defer upper.Close()
	dirs := append(ov.Lowers(t), upper.Dir)
	for i, dir := range dirs {
		if err := attachLayer(dir, userns, i < len(dirs)-1, stage, strconv.Itoa(i)); err != nil {
			return nil, 0, fmt.Errorf("overlay root of %s: %w (rootfs.shift = %q cannot help: overlay storage needs idmapped mounts)", m.name, err, cfg.Rootfs.Shift)
		}
	}
	layers, err := rootfs.OpenTarget(ch.pid(), stage.LayerDir())
	if err != nil {
		return nil, 0, err
	}
	return layers, len(dirs), nil
}

// attachLayer idmaps dir and attaches it on the stage as name.
func attachLayer(dir string, userns *os.File, readOnly bool, stage *rootfs.Stage, name string) error {
	layer, err := overlay.IdmapLayer(dir, userns, readOnly)
	if err != nil {
		return err
	}
	defer layer.Close()
	_, err = stage.AttachLayer(layer, name)
	return err
}

// overlayRoot creates the container's root overlay in the container's first
// process from the n layers the monitor attached below dir (lowers, then the
// tree holding upper and work). The result is a detached mount the monitor
// attaches like any other root tree.
func overlayRoot(dir *os.File, n int) (*os.File, error) {
	defer dir.Close()
	if n < 2 {
		return nil, fmt.Errorf("overlay root: %d layers", n)
	}
	var layers []*os.File
	defer func() { closeAll(layers) }()
	for i := range n {
		l, err := openLayer(dir, strconv.Itoa(i))
		if err != nil {
			return nil, err
		}
		layers = append(layers, l)
	}
	tree := layers[n-1]
	upper, err := overlay.OpenBelow(tree, "upper")
	if err != nil {
		return nil, err
	}
	defer upper.Close()
	work, err := overlay.OpenBelow(tree, "work")
	if err != nil {
		return nil, err
	}
	defer work.Close()
	mnt, err := overlay.Mount(layers[:n-1], upper, work)
	if err != nil {
		return nil, fmt.Errorf("overlay root: %w", err)
	}
	return mnt, nil
}

// openLayer opens the layer mount attached as name below dir (crossing into
// the mount, following no symlink).
func openLayer(dir *os.File, name string) (*os.File, error) {
	how := unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	}
	fd, err := unix.Openat2(int(dir.Fd()), name, &how)
	if err != nil {
		return nil, fmt.Errorf("open overlay layer %s: %w", name, err)
	}
	return os.NewFile(uintptr(fd), "layer "+name), nil
}
