package manager

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"lodge/config"
	"lodge/storage"
)

// A copy to another host (lodge copy NAME h2:NEW) sends a stopped container
// and its snapshots to a CopyTarget, which receives them as a migration's
// target does (manager/migrate_in.go: the same staging directory, marker and
// receive calls), but makes a new container of them: its own name, id
// range and MACs, booted fresh. Nothing here is changed: the tree is only
// read, under the container's lock (no start meanwhile). Any failure after
// the target's preflight aborts there, which removes all of it; the target
// also removes it by itself when a receive fails (the source died with the
// stream cut) or no call comes for Manager.ReceiveIdle (the source died between two).
// docs/migration.md, "Copy to another host".

// CopyTarget is the receiving host of a copy, in the order CopyTo calls it.
type CopyTarget interface {
	// AcceptCopy checks that the target can take the copy (see
	// Manager.AcceptCopy) and reserves its name and a new id range there.
	AcceptCopy(ctx context.Context, offer CopyOffer) (CopyAnswer, error)
	// ReceiveCopyLayer takes one shared overlay layer the target lacks.
	// A receive that fails (a stream cut) removes the copy there.
	ReceiveCopyLayer(ctx context.Context, name, layer string, r io.Reader) error
	// ReceiveCopyRootfs takes the container's tree.
	ReceiveCopyRootfs(ctx context.Context, name string, r io.Reader) error
	// ReceiveCopySnapshots takes the snapshots' directory (each
	// snapshot's tree, configuration and snapshot.json).
	ReceiveCopySnapshots(ctx context.Context, name string, r io.Reader) error
	// FinishCopy makes the copy one of the target's containers, stopped;
	// until Commit an Abort still removes it.
	FinishCopy(ctx context.Context, name string) (CopyPlaced, error)
	// Abort removes everything the target holds of the copy.
	Abort(ctx context.Context, name string) error
	// Commit says the source got FinishCopy's answer: the copy is the
	// target's for good.
	Commit(ctx context.Context, name string) error
}

// CopyOffer is what the source says of the container it copies.
type CopyOffer struct {
	Name    string `json:"name"`   // the copy's name on the target
	Source  string `json:"source"` // the container's name on the source
	Config  []byte `json:"config"` // its config.toml
	Backend string `json:"backend"`
	Image   string `json:"image,omitempty"`
	// Layers are the shared overlay layers the container's tree and its
	// snapshots' stand on, and BaseImage the image's root filesystem
	// directory below them all.
	Layers    []string `json:"layers,omitempty"`
	BaseImage string   `json:"base_image,omitempty"`
	Snapshots []string `json:"snapshots,omitempty"`
	Bytes     int64    `json:"bytes"` // disk the trees take, about
}

// CopyAnswer is the target's answer to a preflight that passed.
type CopyAnswer struct {
	MissingLayers []string `json:"missing_layers,omitempty"`
	HostID        uint32   `json:"host_id"` // the copy's id range there
	IDCount       uint32   `json:"id_count"`
}

// CopyPlaced is what the target says of the copy it made.
type CopyPlaced struct {
	HostID  uint32      `json:"host_id"`
	IDCount uint32      `json:"id_count"`
	NICs    []CopiedNIC `json:"nics,omitempty"`
}

// CopiedNIC is a NIC of the copy, with its new MAC.
type CopiedNIC struct {
	Name   string `json:"name"`
	HWAddr string `json:"hwaddr"`
}

// CopyToResult says what a copy to another host did.
type CopyToResult struct {
	Name      string        `json:"name"`
	Source    string        `json:"source"`
	Backend   string        `json:"backend"`
	Snapshots []string      `json:"snapshots"`
	Bytes     int64         `json:"bytes"` // file data sent
	Total     time.Duration `json:"total_ns"`
	HostID    uint32        `json:"host_id"` // the copy's id range on the target
	IDCount   uint32        `json:"id_count"`
	NICs      []CopiedNIC   `json:"nics,omitempty"`
}

// CopyTo copies stopped container name, with its snapshots, to target as
// a new container newName. It refuses a running container, and one it
// cannot carry (storage other than dir and overlay, a tree chowned into
// this host's ids), before the target is asked anything. progress gets a
// line per step and, every second of a stream, the bytes sent so far.
func (m *Manager) CopyTo(ctx context.Context, name, newName string, target CopyTarget, progress func(string, ...any)) (CopyToResult, error) {
	if progress == nil {
		progress = func(string, ...any) {}
	}
	began := time.Now()
	res := CopyToResult{Name: newName, Source: name}
	if strings.Contains(name, "/") {
		return res, invalid(fmt.Errorf("copy %s: a snapshot is not copied to another host alone: copy it to a container here first (lodge copy %s NEW), then that one", name, name))
	}
	if err := config.ValidateName(name); err != nil {
		return res, invalid(err)
	}
	if err := config.ValidateName(newName); err != nil {
		return res, invalid(err)
	}
	lock, err := m.store.Lock(ctx, name)
	if err != nil {
		return res, err
	}
	defer lock.Unlock()
	if err := m.prepareStorage(name); err != nil {
		return res, err
	}
	if st, err := m.liveState(name); err != nil {
		return res, err
	} else if st != nil {
		return res, fmt.Errorf("container %q %w (pid %d); a copy to another host takes a stopped container: stop it first (lodge stop %s), or move it running with lodge migrate %s REMOTE",
			name, ErrRunning, st.Init.PID, name, name)
	}
	offer, err := m.copyOffer(ctx, name, newName)
	if err != nil {
		return res, fmt.Errorf("copy %s to another host: %w; nothing was sent", name, err)
	}
	res.Backend, res.Snapshots = offer.Backend, append([]string{}, offer.Snapshots...)
	progress("preflight of %s on the target", newName)
	ans, err := target.AcceptCopy(ctx, offer)
	if err != nil {
		return res, fmt.Errorf("copy %s: the target refused: %w; nothing was sent", name, err)
	}
	res.HostID, res.IDCount = ans.HostID, ans.IDCount
	abort := func(err error) (CopyToResult, error) {
		actx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if aerr := target.Abort(actx, newName); aerr != nil {
			return res, fmt.Errorf("copy %s to %s: %w; %s is untouched here, and removing the copy from the target failed: %v (what it received is removed there when its lodge serve restarts, or by the next copy or migration of %s)", name, newName, err, name, aerr, newName)
		}
		return res, fmt.Errorf("copy %s to %s: %w; %s is untouched here, and the target keeps nothing of the copy", name, newName, err, name)
	}
	ticker := func(what string) func(int64) {
		return func(sent int64) { progress("  %s: %d MiB sent", what, sent>>20) }
	}
	lowers := m.overlay().Lowers(storage.Tree{Layers: ans.MissingLayers})
	if err := checkAskedLayers(ans.MissingLayers, offer.Layers, name); err != nil {
		return abort(err)
	}
	for i, id := range ans.MissingLayers {
		progress("sending layer %s (%d of %d)", id, i+1, len(ans.MissingLayers))
		_, stats, err := treeSend{dir: lowers[i], tick: ticker("layer " + id),
			receive: func(r io.Reader) error { return target.ReceiveCopyLayer(ctx, newName, id, r) }}.run(ctx)
		if err != nil {
			return abort(fmt.Errorf("send layer %s: %w", id, err))
		}
		res.Bytes += stats.Bytes
	}
	progress("sending the root filesystem of %s (%s storage, about %d MiB with its snapshots)", name, offer.Backend, offer.Bytes>>20)
	_, stats, err := treeSend{dir: m.store.RootfsPath(name), skip: treeSkip(offer.Backend), tick: ticker("root filesystem"),
		receive: func(r io.Reader) error { return target.ReceiveCopyRootfs(ctx, newName, r) }}.run(ctx)
	if err != nil {
		return abort(fmt.Errorf("send the root filesystem: %w", err))
	}
	res.Bytes += stats.Bytes
	if len(offer.Snapshots) > 0 {
		progress("sending the snapshots of %s (%s)", name, strings.Join(offer.Snapshots, ", "))
		_, stats, err := treeSend{dir: m.snapshotsDir(name), skip: snapshotsSkip(offer.Snapshots, offer.Backend), tick: ticker("snapshots"),
			receive: func(r io.Reader) error { return target.ReceiveCopySnapshots(ctx, newName, r) }}.run(ctx)
		if err != nil {
			return abort(fmt.Errorf("send the snapshots: %w", err))
		}
		res.Bytes += stats.Bytes
	}
	if err := ctx.Err(); err != nil {
		return abort(err)
	}
	progress("making %s on the target", newName)
	placed, err := target.FinishCopy(ctx, newName)
	if err != nil {
		return abort(fmt.Errorf("make the copy on the target: %w", err))
	}
	res.HostID, res.IDCount, res.NICs = placed.HostID, placed.IDCount, placed.NICs
	commit := func(cctx context.Context) error { return target.Commit(cctx, newName) }
	if err := untilAnswered(progress, "commit", commit); err != nil {
		// The copy is whole there, uncommitted: the target's server
		// removes it at its next start unless it was started meanwhile.
		return res, fmt.Errorf("copy %s to %s: the target did not take the commit: %w; the copy there is removed when its lodge serve restarts, unless it is started before", name, newName, err)
	}
	res.Total = time.Since(began)
	return res, nil
}

// copyOffer describes stopped container name for a copy's preflight,
// refusing what a copy to another host cannot carry.
func (m *Manager) copyOffer(ctx context.Context, name, newName string) (CopyOffer, error) {
	offer := CopyOffer{Name: newName, Source: name}
	b, rec, err := storage.ForContainer(m.store.Root, m.store.ContainerDir(name))
	if err != nil {
		return offer, err
	}
	offer.Backend, offer.Image = b.Name(), rec.Image
	if b.Name() != storage.DirName && b.Name() != storage.OverlayName {
		return offer, fmt.Errorf("it is on %s storage, which a copy to another host does not carry yet (dir and overlay only): copy it here to a container on dir storage first", b.Name())
	}
	if _, err := os.Stat(m.store.ShiftPath(name)); err == nil {
		return offer, fmt.Errorf("its files were chowned into this host's id range (a chown shift: rootfs.shift, or a filesystem without idmapped mounts), and a copy to another host carries only trees that keep natural ids on disk")
	} else if !errors.Is(err, os.ErrNotExist) {
		return offer, err
	}
	if offer.Config, err = os.ReadFile(m.store.ConfigPath(name)); err != nil {
		return offer, err
	}
	if offer.Snapshots, err = m.snapshotNames(name); err != nil {
		return offer, err
	}
	trees := []string{m.store.RootfsPath(name)}
	for _, snap := range offer.Snapshots {
		trees = append(trees, filepath.Join(m.snapshotsDir(name), snap, "rootfs"))
	}
	for i, dir := range trees {
		if b.Name() == storage.OverlayName {
			t, err := storage.ReadTree(dir)
			if err != nil {
				return offer, err
			}
			if i == 0 {
				offer.BaseImage = t.Image
			} else if t.Image != offer.BaseImage {
				return offer, fmt.Errorf("its snapshot %s stands on another image (%s) than the container (%s), which a copy to another host does not carry", offer.Snapshots[i-1], t.Image, offer.BaseImage)
			}
			for _, id := range t.Layers {
				if !slices.Contains(offer.Layers, id) {
					offer.Layers = append(offer.Layers, id)
				}
			}
		}
		if u, err := b.Usage(ctx, dir); err == nil {
			offer.Bytes += u.Bytes
		}
	}
	return offer, nil
}

// snapshotsSkip leaves out of the snapshots' directory what is not one of
// the complete snapshots named (what interrupted operations left), and
// overlay's work directories' contents.
func snapshotsSkip(snaps []string, backend string) func(string) bool {
	keep := map[string]bool{}
	for _, s := range snaps {
		keep[s] = true
	}
	return func(rel string) bool {
		top, below, _ := strings.Cut(rel, "/")
		if !keep[top] {
			return true
		}
		return backend == storage.OverlayName && strings.HasPrefix(below, "rootfs/work/")
	}
}
