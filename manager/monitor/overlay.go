package monitor

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

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
// through the container's user namespace and attached on the stage, from
// where they propagate to the child's mount namespace. It returns the
// child's copies (lowers topmost first, then the upper's), opened through
// /proc/PID/root, for the child to build the overlay from (overlayRoot).
func (m *Monitor) overlayLayers(cfg *config.Container, ch *child, stage *rootfs.Stage) ([]*os.File, error) {
	if rec, err := m.readShift(); err != nil || rec != nil || cfg.Rootfs.Shift == config.ShiftChown {
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("container %s has overlay storage, whose lower layers are shared with its image and with other containers and snapshots, "+
			"so its files cannot be chowned (rootfs.shift = %q): set rootfs.shift = \"auto\" or \"idmap\", "+
			"or make the container with the dir backend (storage.backend = \"dir\" in the host config)", m.name, cfg.Rootfs.Shift)
	}
	o, err := storage.NewOverlay(m.store.Root)
	if err != nil {
		return nil, err
	}
	ov := o.(storage.Overlay)
	if err := ov.Recover(); err != nil {
		return nil, err
	}
	path := m.store.RootfsPath(m.name)
	t, err := storage.ReadTree(path)
	if err != nil {
		return nil, err
	}
	userns, err := ch.userns()
	if err != nil {
		return nil, err
	}
	defer userns.Close()
	dirs := append(ov.Lowers(t), path)
	var files []*os.File
	for i, dir := range dirs {
		f, err := m.attachLayer(dir, userns, i < len(dirs)-1, ch, stage, strconv.Itoa(i))
		if err != nil {
			closeAll(files)
			return nil, fmt.Errorf("overlay root of %s: %w (rootfs.shift = %q cannot help: overlay storage needs idmapped mounts)", m.name, err, cfg.Rootfs.Shift)
		}
		files = append(files, f)
	}
	return files, nil
}

// attachLayer idmaps dir, attaches it on the stage as name and opens the
// child's copy.
func (m *Monitor) attachLayer(dir string, userns *os.File, readOnly bool, ch *child, stage *rootfs.Stage, name string) (*os.File, error) {
	layer, err := overlay.IdmapLayer(dir, userns, readOnly)
	if err != nil {
		return nil, err
	}
	defer layer.Close()
	at, err := stage.AttachLayer(layer, name)
	if err != nil {
		return nil, err
	}
	return rootfs.OpenTarget(ch.pid(), at)
}

// overlayRoot creates the container's root overlay in the container's first
// process, from the layers the monitor handed over (lowers, then the tree
// holding upper and work). The result is a detached mount the monitor
// attaches like any other root tree.
func overlayRoot(layers []*os.File) (*os.File, error) {
	defer closeAll(layers)
	if len(layers) < 2 {
		return nil, fmt.Errorf("overlay root: %d layers received", len(layers))
	}
	tree := layers[len(layers)-1]
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
	mnt, err := overlay.Mount(layers[:len(layers)-1], upper, work)
	if err != nil {
		return nil, fmt.Errorf("overlay root from %s: %w", filepath.Base(tree.Name()), err)
	}
	return mnt, nil
}
