package manager

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"lodge/config"
	"lodge/internal/events"
	"lodge/internal/revert"
	"lodge/migrate"
	"lodge/network"
	"lodge/storage"
)

// The target's side of a copy from another host. A copy being received is
// an incoming migration (migrate_in.go: the name reserved by a create's
// staging directory with the migration marker, its id range recorded, the
// layers and the tree received as ReceiveMigrationLayer and
// ReceiveMigrationRootfs receive them, AbortMigration, CommitMigration and
// RecoverMigrations as for a migration), except that its id range is a
// new one of this host's, its NICs get new MACs, and FinishCopy places it
// stopped instead of restoring it. Unlike a migration's, whose source may
// still need it, a copy is removed here as soon as a receive fails, or when
// no call comes for Manager.ReceiveIdle, as a migration (incoming_idle.go):
// its source is gone or gave up.

// incomingCopy is a copy this manager receives: the incoming migration
// that holds it (with its idle timer), and what its source offered.
type incomingCopy struct {
	in    *incoming
	offer CopyOffer
}

// incomingCopies are the copies being received, by incomingKey.
var incomingCopies sync.Map

// AcceptCopy is a copy's preflight here, before any data moves: the name
// is free, the configuration's networks exist (its NICs get new MACs and
// DHCP, its proxies are dropped, as a local copy's), the storage backend,
// image and disk space will do; then the name and a new id range are
// reserved.
func (m *Manager) AcceptCopy(ctx context.Context, offer CopyOffer) (CopyAnswer, error) {
	var ans CopyAnswer
	name := offer.Name
	if err := config.ValidateName(name); err != nil {
		return ans, invalid(err)
	}
	for _, snap := range offer.Snapshots {
		if err := ValidateSnapshotName(snap); err != nil {
			return ans, invalid(err)
		}
	}
	if err := m.nameFree(name); err != nil {
		return ans, err
	}
	cfg, err := config.Parse(name+"/config.toml", offer.Config)
	if err != nil {
		return ans, invalid(fmt.Errorf("the configuration of %s: %w", offer.Source, err))
	}
	cfg.Source.Created = time.Now().UTC().Truncate(time.Second)
	resetCopiedNICs(name, cfg)
	unlockNetworks, err := m.prepareNICs(ctx, name, cfg)
	if err != nil {
		return ans, err
	}
	unlockNetworks()
	mo := MigrationOffer{Name: name, Backend: offer.Backend, Image: offer.Image, Layers: offer.Layers, BaseImage: offer.BaseImage, Bytes: offer.Bytes}
	if ans.MissingLayers, err = m.checkIncomingStorage(mo, cfg, "a copy to another host"); err != nil {
		return ans, err
	}
	claim := func() error { return m.allocateRange(name, revert.New()) }
	if err := m.stageIncoming(mo, cfg, claim, true); err != nil {
		return ans, err
	}
	in, err := m.incoming(name)
	if err != nil {
		return ans, err
	}
	incomingCopies.Store(m.incomingKey(name), &incomingCopy{in: in, offer: offer})
	if r, ok, err := m.allocator().Lookup(name); err == nil && ok {
		ans.HostID, ans.IDCount = r.HostID, r.Size
	}
	return ans, nil
}

// resetCopiedNICs gives a copy's NICs the MACs prepareNICs makes for its
// name, and DHCP: a copy on the same network needs its own (static
// addresses are not copied), as Copy does here.
func resetCopiedNICs(name string, cfg *config.Container) {
	for i := range cfg.Networks {
		nic := &cfg.Networks[i]
		nic.IPv4, nic.IPv6 = "", ""
		if nic.Kind() == config.NICNone {
			continue
		}
		if nic.Name == "" {
			nic.Name = nic.InterfaceName(i)
		}
		nic.HWAddr = network.MAC(name + "/" + nic.Name).String()
	}
	cfg.Proxies = nil // a host port is forwarded to one container only
}

// incomingCopyOf returns the copy of name this manager receives.
func (m *Manager) incomingCopyOf(name string) (*incomingCopy, error) {
	in, err := m.incoming(name)
	if err != nil {
		return nil, err
	}
	v, ok := incomingCopies.Load(m.incomingKey(name))
	if !ok || v.(*incomingCopy).in != in {
		return nil, kindError{fmt.Errorf("no copy of %s is being received here", name), ErrNotFound}
	}
	return v.(*incomingCopy), nil
}

// current says whether c is still the copy of name being received here.
func (m *Manager) current(name string, c *incomingCopy) bool {
	v, ok := incomingCopies.Load(m.incomingKey(name))
	in, err := m.incoming(name)
	return ok && v == c && err == nil && in == c.in
}

// receiveCopy runs one receive of an incoming copy; if it fails, the copy
// is removed here (the source aborts it anyway, if it still runs).
func (m *Manager) receiveCopy(name string, receive func(c *incomingCopy) error) error {
	c, err := m.incomingCopyOf(name)
	if err != nil {
		return err
	}
	defer c.in.idle.call()()
	if err := receive(c); err != nil {
		c.in.mu.Lock()
		defer c.in.mu.Unlock()
		if m.current(name, c) {
			m.abortLocked(c.in)
			incomingCopies.CompareAndDelete(m.incomingKey(name), c)
			return fmt.Errorf("%w; the copy %s is removed here", err, name)
		}
		return err
	}
	return nil
}

// ReceiveCopyLayer takes one shared overlay layer of an incoming copy.
func (m *Manager) ReceiveCopyLayer(ctx context.Context, name, layer string, r io.Reader) error {
	return m.receiveCopy(name, func(*incomingCopy) error { return m.ReceiveMigrationLayer(ctx, name, layer, r) })
}

// ReceiveCopyRootfs takes the tree of an incoming copy.
func (m *Manager) ReceiveCopyRootfs(ctx context.Context, name string, r io.Reader) error {
	return m.receiveCopy(name, func(*incomingCopy) error { return m.ReceiveMigrationRootfs(ctx, name, r) })
}

// ReceiveCopySnapshots takes the snapshots' directory of an incoming copy.
func (m *Manager) ReceiveCopySnapshots(ctx context.Context, name string, r io.Reader) error {
	return m.receiveCopy(name, func(c *incomingCopy) error {
		c.in.mu.Lock()
		defer c.in.mu.Unlock()
		dir := filepath.Join(c.in.res.dir, "snapshots")
		if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		_, err := migrate.ReceiveTree(ctx, r, dir)
		return err
	})
}

// personalizeSnapshot gives a received snapshot's tree the copy's hostname
// and a machine-id of its own, as personalize the copy's: restored, it
// must not be the source again (two machine-ids alike on one network). The
// view of a tree needs a storage record beside it: one is written for the
// while.
func (m *Manager) personalizeSnapshot(dir, name, backend string) error {
	if err := storage.WriteRecord(dir, storage.Record{Backend: backend}); err != nil {
		return err
	}
	defer os.Remove(filepath.Join(dir, storage.RecordFile))
	return m.personalize(dir, name)
}

// FinishCopy makes the received copy a container of this host, stopped:
// its own hostname and machine-id, its snapshots' with them and with its
// NICs, limits.disk applied; then it is moved into place. Until Commit an
// Abort removes it (its source did not get this answer). On failure
// nothing of it is left.
func (m *Manager) FinishCopy(ctx context.Context, name string) (CopyPlaced, error) {
	var placed CopyPlaced
	c, err := m.incomingCopyOf(name)
	if err != nil {
		return placed, err
	}
	// Finished or removed, not expired: an expiry that fired meanwhile
	// waits for the lock, then finds the copy gone.
	c.in.idle.stop()
	in := c.in
	in.mu.Lock()
	defer in.mu.Unlock()
	defer incomingCopies.Delete(m.incomingKey(name))
	fail := func(err error) (CopyPlaced, error) {
		m.abortLocked(in)
		return placed, err
	}
	staging := in.res.dir
	cfg, err := config.Load(filepath.Join(staging, "config.toml"))
	if err != nil {
		return fail(err)
	}
	// Only the snapshots offered: anything else the stream brought goes.
	entries, _ := os.ReadDir(filepath.Join(staging, "snapshots"))
	for _, e := range entries {
		if !slices.Contains(c.offer.Snapshots, e.Name()) {
			os.RemoveAll(filepath.Join(staging, "snapshots", e.Name()))
		}
	}
	// Before anything here reads the trees (a personalization mounts them).
	if err := m.sealIncomingTrees(in); err != nil {
		return fail(err)
	}
	for _, snap := range c.offer.Snapshots {
		dir := filepath.Join(staging, "snapshots", snap)
		if _, err := os.Stat(filepath.Join(dir, snapshotFile)); err != nil {
			return fail(fmt.Errorf("snapshot %s of %s did not arrive whole: %w", snap, c.offer.Source, err))
		}
		scfg, err := config.Load(filepath.Join(dir, "config.toml"))
		if err != nil {
			return fail(fmt.Errorf("snapshot %s: %w", snap, err))
		}
		resetCopiedNICs(name, scfg)
		if err := scfg.Save(filepath.Join(dir, "config.toml")); err != nil {
			return fail(err)
		}
		if err := m.personalizeSnapshot(dir, name, c.offer.Backend); err != nil {
			return fail(fmt.Errorf("snapshot %s: %w", snap, err))
		}
	}
	if err := m.personalize(staging, name); err != nil {
		return fail(err)
	}
	if cfg.Limits.Disk > 0 {
		if err := m.setDiskLimit(ctx, staging, cfg.Limits.Disk); err != nil {
			return fail(fmt.Errorf("%w; the copy keeps the source's limits.disk: unset it there first (lodge config set %s limits.disk=0)", err, c.offer.Source))
		}
	}
	os.Remove(filepath.Join(staging, "checkpoints")) // empty: a copy boots fresh
	if err := m.placeIncoming(in); err != nil {
		return fail(err)
	}
	in.res.release()
	in.restored = true // placed: Commit or Abort comes next
	if r, ok, err := m.allocator().Lookup(name); err == nil && ok {
		placed.HostID, placed.IDCount = r.HostID, r.Size
	}
	for i, nic := range cfg.Networks {
		if nic.Kind() != config.NICNone {
			placed.NICs = append(placed.NICs, CopiedNIC{Name: nic.InterfaceName(i), HWAddr: nic.HWAddr})
		}
	}
	m.emit(name, events.Event{Type: events.Copied, Peer: c.offer.Source, Direction: events.DirectionIn})
	return placed, nil
}
