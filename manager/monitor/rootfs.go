package monitor

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"lodge/config"
	"lodge/internal/atomicfile"
	"lodge/internal/failpoint"
	"lodge/rootfs"
	"lodge/storage"
)

// How a root filesystem's ownership reaches the container.
const (
	modeIdmapped = "idmapped" // idmapped mount: files keep natural ids on disk
	modeShifted  = "shifted"  // chowned once into the container's host range
)

// shiftRecord is kept in containers/NAME/shift.json once a chown shift began.
// Complete false means it was interrupted and is resumed on the next start.
type shiftRecord struct {
	HostID   uint32 `json:"host_id"`
	Count    uint32 `json:"count"`
	Complete bool   `json:"complete"`
}

// rootTree returns the detached mount of the root filesystem for the child:
// idmapped where the filesystem allows it, else (rootfs.shift = "auto") after a
// one-time chown shift. It says which in its second result.
func (m *Monitor) rootTree(cfg *config.Container, ch *child) (*os.File, string, error) {
	dir := m.store.RootfsPath(m.name)
	rec, err := m.readShift()
	if err != nil {
		return nil, "", err
	}
	if rec != nil || cfg.Rootfs.Shift == config.ShiftChown {
		return m.shiftedTree(dir)
	}
	userns, err := ch.userns()
	if err != nil {
		return nil, "", err
	}
	defer userns.Close()
	tree, err := rootfs.OpenTree(dir, userns)
	if err == nil {
		return tree, modeIdmapped, nil
	}
	if !errors.Is(err, rootfs.ErrCannotIdmap) || cfg.Rootfs.Shift == config.ShiftIDMap {
		return nil, "", fmt.Errorf("%w (rootfs.shift = %q)", err, cfg.Rootfs.Shift)
	}
	m.log.Warn("falling back to a chown shift", "reason", err)
	m.status.progress("%v; shifting file ownership with chown instead (once)", err)
	return m.shiftedTree(dir)
}

// shiftedTree finishes (or does) the chown shift and returns a plain bind of dir.
func (m *Monitor) shiftedTree(dir string) (*os.File, string, error) {
	rec, err := m.readShift()
	if err != nil {
		return nil, "", err
	}
	if rec != nil && (rec.HostID != m.ids.HostID || rec.Count != m.ids.Size) {
		return nil, "", fmt.Errorf("root filesystem was shifted to host ids %d+%d but the container now has %d+%d; refusing to start",
			rec.HostID, rec.Count, m.ids.HostID, m.ids.Size)
	}
	if rec == nil || !rec.Complete {
		if err := m.shift(dir); err != nil {
			return nil, "", err
		}
	}
	tree, err := rootfs.OpenTree(dir, nil)
	if err != nil {
		return nil, "", err
	}
	return tree, modeShifted, nil
}

func (m *Monitor) shift(dir string) error {
	rec := shiftRecord{HostID: m.ids.HostID, Count: m.ids.Size}
	if err := m.writeShift(rec); err != nil {
		return err
	}
	m.status.progress("shifting ownership of %s to host ids %d-%d", dir, rec.HostID, rec.HostID+rec.Count-1)
	progress := func(done, total int) { m.status.progress("shifted %d of %d files", done, total) }
	if err := rootfs.Shift(dir, rootfs.IDShift{HostID: rec.HostID, Count: rec.Count}, progress); err != nil {
		return fmt.Errorf("chown shift (resumes on the next start): %w", err)
	}
	rec.Complete = true
	return m.writeShift(rec)
}

func (m *Monitor) readShift() (*shiftRecord, error) {
	data, err := os.ReadFile(m.store.ShiftPath(m.name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var rec shiftRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("%s is corrupt: %w", m.store.ShiftPath(m.name), err)
	}
	return &rec, nil
}

func (m *Monitor) writeShift(rec shiftRecord) error {
	data, _ := json.Marshal(rec)
	return atomicfile.Write(m.store.ShiftPath(m.name), data, 0o600)
}

// rootLayers returns what the child builds its root from: the detached root
// tree (rootTree), or for overlay storage the directory holding the n layers
// it mounts the overlay from (overlayLayers; n is 0 otherwise). It says which
// in its second result.
func (m *Monitor) rootLayers(cfg *config.Container, ch *child, stage *rootfs.Stage) (*os.File, string, int, error) {
	if err := failpoint.Check("rootfs"); err != nil {
		return nil, "", 0, err
	}
	ovl, err := m.usesOverlay()
	if err != nil {
		return nil, "", 0, err
	}
	if ovl {
		layers, n, err := m.overlayLayers(cfg, ch, stage)
		if err != nil {
			return nil, "", 0, err
		}
		return layers, modeOverlay, n, nil
	}
	tree, mode, err := m.rootTree(cfg, ch)
	return tree, mode, 0, err
}

// stopSignal is the signal that asks the container's init to shut down: the
// configured one, else SIGRTMIN+3 for systemd and SIGPWR for the others
// (busybox init, sysvinit).
func (m *Monitor) stopSignal(cfg *config.Container) (syscall.Signal, error) {
	if cfg.Init.StopSignal != "" {
		return config.ParseSignal(cfg.Init.StopSignal)
	}
	view, err := storage.OpenView(m.store.Root, m.store.ContainerDir(m.name), false)
	if err != nil {
		return 0, err
	}
	defer view.Close()
	if isSystemd(view.Dir, cfg.Init.Command[0]) {
		return config.ParseSignal("SIGRTMIN+3")
	}
	return syscall.SIGPWR, nil
}

// isSystemd resolves the init path inside the root filesystem (symlinks are
// followed as the container would, never out to the host) and looks at its name.
func isSystemd(rootfsDir, initPath string) bool {
	resolved, err := rootfs.ResolveInRoot(rootfsDir, initPath)
	if err != nil {
		return false
	}
	return filepath.Base(resolved) == "systemd" || strings.HasSuffix(resolved, "/systemd/systemd")
}
