package manager

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"lodge/config"
	"lodge/internal/atomicfile"
	"lodge/internal/events"
	"lodge/internal/idmap"
	"lodge/migrate"
	"lodge/network"
	"lodge/storage"
)

// The target's side of a migration. AcceptMigration reserves the name (a
// create's staging directory, ROOT/tmp/NAME.create, locked by this process)
// and the id range; the tree and the checkpoint are received into that
// staging directory; RestoreMigration moves it into place and restores the
// container from the received checkpoint. Until then the container does not
// exist for any other command, and AbortMigration (or a restore that fails)
// removes all of it. A target process killed meanwhile leaves the staging
// directory to the next create's sweep (its owner is dead).
//
// A restored container is held frozen (its cgroup's freezer) until the
// source's Commit: the source resumes its own copy when it does not get
// Restore's answer, and the target's copy must not run meanwhile. Only
// Commit (the source killed its tree) thaws it; Abort deletes it; a server
// restarted with one held keeps it held (RecoverMigrations) until the
// source's word comes.

// migrationMarker, in an incoming container's directory (staging, then its
// own), says it arrived by a migration that its source has not committed
// yet: an Abort then removes it even when the process that received it is
// gone (a restarted server), and a staging directory left by a killed
// receiver gives its id range back (recoverMigrations).
const migrationMarker = "migration.json"

type migrationMark struct {
	Name string `json:"name"`
	// Held: the restored container was frozen to wait for the source's
	// word. A restarted server holds those not marked so yet, and leaves
	// the held ones as they are (an operator may have thawed one whose
	// source is gone: lodge unfreeze).
	Held bool `json:"held,omitempty"`
	// Committed: the source's Commit came; the container is being thawed
	// (the marker goes once it is). A restarted server finishes that.
	Committed bool `json:"committed,omitempty"`
	// Copy: a stopped container copied here (lodge copy NAME REMOTE:NEW),
	// never held: a restarted server removes it if its Commit never came
	// (the source said the copy failed), unless it was started meanwhile.
	Copy bool `json:"copy,omitempty"`
}

// setMark rewrites container name's marker.
func (m *Manager) setMark(name string, mark migrationMark) error {
	data, _ := json.Marshal(mark)
	return atomicfile.Write(filepath.Join(m.store.ContainerDir(name), migrationMarker), data, 0o600)
}

// incoming is a migration a manager is receiving.
type incoming struct {
	mu    sync.Mutex
	offer MigrationOffer
	res   *reservation
	moved bool // the staging directory is the container's now
	// restored: the container runs here. The record stays so that an
	// Abort from a source that did not get Restore's answer (and resumes
	// its own copy) still removes it; the next AcceptMigration of the name
	// drops it once the container has left.
	restored bool
	// idle removes it when its source stops calling (incoming_idle.go),
	// until its restore (or a copy's finish) begins.
	idle  *idleTimer
	began time.Time // the offer's acceptance, for the migrated event's duration
}

// incomings are the migrations this process receives, by manager and
// name: two managers of one root in a process see each other's as they
// would another process's (by the reservation's lock and the markers).
var incomings sync.Map

func (m *Manager) incomingKey(name string) string { return fmt.Sprintf("%p\x00%s", m, name) }

func (m *Manager) incoming(name string) (*incoming, error) {
	v, ok := incomings.Load(m.incomingKey(name))
	if !ok {
		return nil, kindError{fmt.Errorf("no migration of %s is being received here", name), ErrNotFound}
	}
	return v.(*incoming), nil
}

// checkpointDirIn is where a migration's checkpoint goes in the container's
// directory dir.
func checkpointDirIn(dir string) string { return filepath.Join(dir, "checkpoints", "migration") }

// incomingCheckpoint is the received checkpoint's directory, for tests.
func (m *Manager) incomingCheckpoint(name string) (string, bool) {
	in, err := m.incoming(name)
	if err != nil {
		return "", false
	}
	return checkpointDirIn(in.res.dir), true
}

// AcceptMigration is a target's preflight: it checks that this host can
// take the container offered, before the source freezes anything, and
// reserves its name and id range. It refuses, saying why, if the name is
// taken (ErrExists), CRIU here is older than the source's or this CPU
// lacks a flag the source's has (ErrIncompatible), the storage backend or
// the image is missing, the id range is taken (ErrInUse) or not in this
// host's pool (ErrIncompatible), a NIC's network does not exist here
// (ErrNotFound), or the disk lacks space (ErrIncompatible). The answer
// says which CRIU features it has: the source checks them.
func (m *Manager) AcceptMigration(ctx context.Context, offer MigrationOffer) (MigrationAnswer, error) {
	var ans MigrationAnswer
	name := offer.Name
	if err := config.ValidateName(name); err != nil {
		return ans, invalid(err)
	}
	if err := m.nameFree(name); err != nil {
		return ans, err
	}
	criu, err := migrate.FindCRIU(m.host.CRIU.Path)
	if err != nil {
		return ans, err
	}
	ans.CRIU = criu.Version
	// Asked here, before anything is frozen: a failed feature check only
	// rules the faster modes out.
	features, _ := criu.CheckFeatures()
	ans.MemTrack, ans.LazyPages = features.MemTrack, features.LazyPages
	ans.UnprivilegedUserfault = unprivilegedUserfaultfd()
	if criu.Version < offer.CRIU {
		return ans, incompatible("CRIU here is %s, older than the source's (%s): it may not read the source's images; install the same CRIU on both hosts", criu, migrate.VersionString(offer.CRIU))
	}
	if err := checkOfferedCPU(name, offer.CPU); err != nil {
		return ans, err
	}
	cfg, err := config.Parse(name+"/config.toml", offer.Config)
	if err != nil {
		return ans, invalid(fmt.Errorf("the container's configuration: %w", err))
	}
	for _, n := range offer.Networks {
		if _, err := m.readNetwork(n); err != nil {
			err = fmt.Errorf("the network %s of %s does not exist here: create it first (lodge network create %s)", n, name, n)
			return ans, kindError{err, ErrNotFound}
		}
	}
	if ans.MissingLayers, err = m.checkIncomingStorage(offer, cfg, "a migration"); err != nil {
		return ans, err
	}
	// Last of the checks, as it runs CRIU: the source checks the answer.
	ans.CRIUFeatures = criu.HasFeatures(ctx, migrate.RestoreFeatures)
	claim := func() error {
		ids, err := m.claimMigrationIDs(offer)
		ans.HostID, ans.IDCount = ids.HostID, ids.Size
		return err
	}
	return ans, m.stageIncoming(offer, cfg, claim, false)
}

// claimMigrationIDs reserves the id range of an incoming migration: the
// one the container has on the source when it is free here, else (taken,
// or not a range of this host's pool) a range of this host's own, the
// same size: the restore then runs with it (ReceiveMigrationCheckpoint
// rewrites the checkpoint's id maps, migrate.RemapImages). It returns the
// range the container gets here.
func (m *Manager) claimMigrationIDs(offer MigrationOffer) (idmap.Range, error) {
	ids := idmap.Range{HostID: offer.HostID, Size: offer.IDCount}
	alloc := m.allocator()
	err := alloc.Reserve(offer.Name, ids)
	if err == nil {
		return ids, nil
	}
	refused := m.reserveRefused(err, ids)
	if !errors.Is(refused, ErrInUse) && !errors.Is(refused, ErrIncompatible) {
		return idmap.Range{}, refused
	}
	why := fmt.Sprintf("the range %s of %s is not free here (%v)", ids, offer.Name, err)
	if offer.Shifted {
		// Its tree holds the source's host ids on disk (rootfs.shift).
		kind := ErrInUse
		if errors.Is(refused, ErrIncompatible) {
			kind = ErrIncompatible
		}
		return idmap.Range{}, kindError{fmt.Errorf("%s, and its files were chowned into that range on the source (a chown shift: rootfs.shift, or a filesystem without idmapped mounts): a restore with another range would not own them", why), kind}
	}
	if size := m.host.IDMap.Size; size != offer.IDCount {
		return idmap.Range{}, incompatible("%s, and this host's ranges have %d ids (idmap.size) where the container's has %d: give both hosts the same idmap.size", why, size, offer.IDCount)
	}
	got, err := alloc.Allocate(offer.Name)
	if err != nil {
		return idmap.Range{}, fmt.Errorf("%s, and a range of this host's for it: %w", why, err)
	}
	return got, nil
}

// checkIncomingStorage checks that this host can hold the offered tree (a
// migration's, or a copy's: what says which): its backend, its image and
// the disk space; it returns the overlay layers it lacks.
func (m *Manager) checkIncomingStorage(offer MigrationOffer, cfg *config.Container, what string) ([]string, error) {
	name := offer.Name
	var missing []string
	if cfg.Limits.Disk > 0 && offer.Backend == storage.OverlayName {
		return nil, fmt.Errorf("%s has limits.disk on overlay storage, which %s does not carry yet", name, what)
	}
	switch offer.Backend {
	case storage.DirName:
	case storage.OverlayName:
		if err := checkOfferedLayers(offer.Layers); err != nil {
			return nil, err
		}
		if _, err := m.incomingBase(offer); err != nil {
			return nil, err
		}
		lowers := m.overlay().Lowers(storage.Tree{Layers: offer.Layers})
		for i, id := range offer.Layers {
			if _, err := os.Stat(lowers[i]); err != nil {
				missing = append(missing, id)
			}
		}
	default:
		return nil, fmt.Errorf("%s is on %s storage, which %s does not carry yet (dir and overlay only)", name, offer.Backend, what)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(m.store.Root, &fs); err == nil {
		if free := int64(fs.Bavail) * fs.Bsize; free < offer.Bytes+offer.Bytes/10 {
			return nil, incompatible("%s needs about %d MiB here and %s has %d MiB free", name, offer.Bytes>>20, m.store.Root, free>>20)
		}
	}
	return missing, nil
}

// stageIncoming reserves offer.Name for a container arriving from another
// host (a migration, or a copy): a create's staging directory with the
// marker, cfg and the storage record, and the id range claimIDs records;
// then the receive calls find it as this manager's incoming. A failure
// leaves nothing (staging removed, range given back).
func (m *Manager) stageIncoming(offer MigrationOffer, cfg *config.Container, claimIDs func() error, copied bool) error {
	name := offer.Name
	if err := m.store.Prepare(); err != nil {
		return err
	}
	m.recoverMigrations()
	m.sweepTmp()
	res, err := m.reserve(name)
	if err != nil {
		return err
	}
	in := &incoming{offer: offer, res: res, idle: m.newIdle(), began: time.Now()}
	fail := func(err error) error {
		m.removeStaging(res.dir)
		res.release()
		return err
	}
	if err := claimIDs(); err != nil {
		return fail(err)
	}
	release := func(err error) error {
		m.allocator().Release(name)
		return fail(err)
	}
	for _, d := range []string{"log", "rootfs", "checkpoints"} {
		if err := os.Mkdir(filepath.Join(res.dir, d), 0o700); err != nil {
			return release(err)
		}
	}
	if err := cfg.Save(filepath.Join(res.dir, "config.toml")); err != nil {
		return release(err)
	}
	mark, _ := json.Marshal(migrationMark{Name: name, Copy: copied})
	if err := os.WriteFile(filepath.Join(res.dir, migrationMarker), mark, 0o600); err != nil {
		return release(err)
	}
	if err := storage.WriteRecord(res.dir, storage.Record{Backend: offer.Backend, Image: offer.Image}); err != nil {
		return release(err)
	}
	if old, loaded := incomings.LoadOrStore(m.incomingKey(name), in); loaded {
		prev := old.(*incoming)
		prev.mu.Lock()
		done := prev.restored
		prev.mu.Unlock()
		// nameFree passed: a restored one has left since.
		if !done || !incomings.CompareAndSwap(m.incomingKey(name), old, in) {
			return release(fmt.Errorf("a migration of %s is already being received here", name))
		}
	}
	in.idle.start(func() { m.expireIncoming(name, in) })
	return nil
}

// overlay is the overlay backend of this root.
func (m *Manager) overlay() storage.Overlay {
	b, _ := storage.NewOverlay(m.store.Root)
	return b.(storage.Overlay)
}

// ReceiveMigrationLayer takes one shared overlay layer of an incoming
// migration: received beside the layers under a temporary name, renamed
// into place once whole. A layer that arrived meanwhile is kept.
func (m *Manager) ReceiveMigrationLayer(ctx context.Context, name, layer string, r io.Reader) error {
	in, err := m.incoming(name)
	if err != nil {
		return err
	}
	defer in.idle.call()()
	in.mu.Lock()
	defer in.mu.Unlock()
	if !slices.Contains(in.offer.Layers, layer) || storage.CheckLayerID(layer) != nil {
		return invalid(fmt.Errorf("layer %q is not one of %s's", layer, name))
	}
	final := m.overlay().Lowers(storage.Tree{Layers: []string{layer}})[0]
	if err := os.MkdirAll(filepath.Dir(final), 0o700); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(final), storage.TempPrefix+"migrate-")
	if err != nil {
		return err
	}
	if _, err := migrate.ReceiveTree(ctx, r, tmp); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, final, unix.RENAME_NOREPLACE); err != nil {
		os.RemoveAll(tmp)
		if !errors.Is(err, unix.EEXIST) && !errors.Is(err, unix.ENOTEMPTY) {
			return err
		}
	}
	return nil
}

// ReceiveMigrationRootfs applies a tree stream (the whole tree, or a delta)
// to the incoming container's root filesystem.
func (m *Manager) ReceiveMigrationRootfs(ctx context.Context, name string, r io.Reader) error {
	in, err := m.incoming(name)
	if err != nil {
		return err
	}
	defer in.idle.call()()
	in.mu.Lock()
	defer in.mu.Unlock()
	_, err = migrate.ReceiveTree(ctx, r, filepath.Join(in.res.dir, "rootfs"))
	return err
}

// ReceiveMigrationCheckpoint takes the incoming container's checkpoint.
func (m *Manager) ReceiveMigrationCheckpoint(ctx context.Context, name string, r io.Reader) error {
	in, err := m.incoming(name)
	if err != nil {
		return err
	}
	defer in.idle.call()()
	in.mu.Lock()
	defer in.mu.Unlock()
	dir := checkpointDirIn(in.res.dir)
	os.RemoveAll(dir)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	if _, err = migrate.ReceiveTree(ctx, r, dir); err != nil {
		return err
	}
	return m.remapCheckpoint(in.offer.Name, dir)
}

// remapCheckpoint rewrites received checkpoint dir for the id range the
// container got here (claimMigrationIDs) when it is not the one its
// images were made with.
func (m *Manager) remapCheckpoint(name, dir string) error {
	rec, err := migrate.ReadRecord(dir)
	if err != nil {
		return err
	}
	to, ok, err := m.allocator().Lookup(name)
	if err != nil {
		return err
	}
	from := idmap.Range{HostID: rec.HostID, Size: rec.IDCount}
	if !ok || to == from {
		return nil
	}
	if err := migrate.RemapImages(dir, from, to); err != nil {
		return fmt.Errorf("%s gets ids %s here, not %s: %w", name, to, from, err)
	}
	return nil
}

// RestoreMigration makes the incoming container one of this root's and
// restores it from the received checkpoint. On failure nothing of it is
// left here.
func (m *Manager) RestoreMigration(ctx context.Context, name string) (MigrationRestored, error) {
	in, err := m.incoming(name)
	if err != nil {
		return MigrationRestored{}, err
	}
	// From here the source's Commit or Abort decides, however long
	// it takes: a restored copy may be the only one left.
	in.idle.stop()
	in.mu.Lock()
	defer in.mu.Unlock()
	if err := m.placeIncoming(in); err != nil {
		m.abortLocked(in)
		return MigrationRestored{}, err
	}
	// The container's own lock (store.Lock) is a lock of its directory,
	// which the reservation holds: let it go for the restore to take it.
	in.res.release()
	dir := checkpointDirIn(m.store.ContainerDir(name))
	// Not cut short once begun: a restore stopped half way by a
	// cancelled context could leave its monitor to finish it.
	// Held from the start: frozen before its tasks run again (CRIU's
	// pre-resume), so that it never runs beside its source's copy, which
	// is frozen, not gone, until the commit.
	if _, err := m.Restore(context.WithoutCancel(ctx), name, RestoreOptions{Dir: dir, Hold: true}, nil); err != nil {
		// CRIU's log outlives the rest, which goes: kept in ROOT/log.
		msg := strings.Replace(err.Error(), "; the checkpoint is kept", "", 1)
		logs := filepath.Join(m.store.Root, "log")
		saved := filepath.Join(logs, "migration-"+name+"-"+time.Now().UTC().Format("20060102-150405")+".restore.log")
		if data, rerr := os.ReadFile(filepath.Join(dir, "restore.log")); rerr == nil && os.MkdirAll(logs, 0o700) == nil && os.WriteFile(saved, data, 0o600) == nil {
			msg = strings.ReplaceAll(msg, filepath.Join(dir, "restore.log"), saved)
		}
		m.abortLocked(in)
		return MigrationRestored{}, reworded{msg, err}
	}
	// Held until Commit: should this answer be lost, the source resumes
	// its copy, and this one must not run beside it. The restore froze
	// it; make sure it still is.
	if st, err := m.liveState(name); err != nil || st == nil || !isFrozen(st) {
		m.abortLocked(in)
		return MigrationRestored{}, fmt.Errorf("the restored %s is not held frozen for the source's commit (state %v, %v); removed here", name, st != nil, err)
	}
	if err := m.setMark(name, migrationMark{Name: name, Held: true}); err != nil {
		m.abortLocked(in)
		return MigrationRestored{}, err
	}
	done := MigrationRestored{Running: time.Now()}
	if st, err := m.liveState(name); err == nil && st != nil {
		done.PID = st.Init.PID
	}
	os.RemoveAll(dir) // the container's memory: not kept
	in.restored = true
	return done, nil
}

// reworded is err with another message.
type reworded struct {
	msg string
	err error
}

func (e reworded) Error() string { return e.msg }
func (e reworded) Unwrap() error { return e.err }

// placeIncoming moves the incoming container's staging directory into place.
func (m *Manager) placeIncoming(in *incoming) error {
	name := in.offer.Name
	if err := m.sealIncomingTrees(in); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(in.res.dir, ownerFile)); err != nil {
		return err
	}
	if err := unix.Renameat2(unix.AT_FDCWD, in.res.dir, unix.AT_FDCWD, m.store.ContainerDir(name), unix.RENAME_NOREPLACE); err != nil {
		if errors.Is(err, unix.EEXIST) || errors.Is(err, unix.ENOTEMPTY) {
			return m.existsError(name)
		}
		return fmt.Errorf("move %s into place: %w", name, err)
	}
	in.moved = true
	return nil
}

// AbortMigration removes everything of an incoming migration: the staging
// directory or the container made of it (also once restored and running:
// the source calls it when it did not get Restore's answer, before it
// resumes its own copy), its id range, and the layers it brought that
// nothing uses. Aborting one that is not here is not an error.
func (m *Manager) AbortMigration(ctx context.Context, name string) error {
	in, err := m.incoming(name)
	if err != nil {
		return m.abortFromDisk(ctx, name)
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	return m.abortLocked(in)
}

func (m *Manager) abortLocked(in *incoming) error {
	name := in.offer.Name
	in.idle.stop()
	if mark, ok := m.uncommitted(name); ok && mark.Committed && in.moved {
		return committedHere(name) // an operator's unfreeze, meanwhile
	}
	var err error
	if in.moved {
		err = m.Delete(context.Background(), name, true)
	} else {
		m.removeStaging(in.res.dir)
		err = m.allocator().Release(name)
	}
	if in.offer.Backend == storage.OverlayName {
		m.overlay().GC()
	}
	if !in.moved {
		in.res.release()
	}
	incomings.Delete(m.incomingKey(name))
	incomingCopies.Delete(m.incomingKey(name)) // a copy's record, if it is one
	return err
}

// unprivilegedUserfaultfd tells whether vm.unprivileged_userfaultfd lets a
// container's user namespace use userfaultfd (CRIU's lazy pages fault the
// restored tasks' memory in through it).
func unprivilegedUserfaultfd() bool {
	data, err := os.ReadFile("/proc/sys/vm/unprivileged_userfaultfd")
	return err == nil && strings.TrimSpace(string(data)) == "1"
}

// abortFromDisk aborts a migration this process holds no record of (it was
// received by a process since gone): the uncommitted container, or the
// staging directory its receiver left, with the id range.
func (m *Manager) abortFromDisk(ctx context.Context, name string) error {
	if config.ValidateName(name) != nil {
		return nil
	}
	if mark, ok := m.uncommitted(name); ok {
		if mark.Committed {
			return committedHere(name)
		}
		return m.Delete(ctx, name, true)
	}
	m.recoverMigrations()
	if _, err := os.Stat(filepath.Join(m.stagingOf(name), migrationMarker)); err == nil {
		return fmt.Errorf("a migration of %s is still being received here by another process", name)
	}
	return nil
}

func (m *Manager) stagingOf(name string) string {
	return filepath.Join(m.store.TmpDir(), strings.ToLower(name)+".create")
}

// recoverMigrations removes the staging directories of migrations whose
// receiver is gone (killed), and gives their id ranges back. The server
// calls it at start (RecoverMigrations); AcceptMigration before it reserves.
func (m *Manager) recoverMigrations() {
	dirs, _ := filepath.Glob(filepath.Join(m.store.TmpDir(), "*.create"))
	for _, dir := range dirs {
		data, err := os.ReadFile(filepath.Join(dir, migrationMarker))
		if err != nil {
			continue
		}
		var mark migrationMark
		if json.Unmarshal(data, &mark) != nil || mark.Name == "" {
			continue
		}
		if _, held := incomings.Load(m.incomingKey(mark.Name)); held {
			continue // this process receives it
		}
		if clearAbandoned(dir) != nil {
			continue // its receiver runs
		}
		if _, err := os.Stat(dir); err == nil {
			continue
		}
		if !m.store.Exists(mark.Name) {
			m.allocator().Release(mark.Name)
		}
	}
}

// RecoverMigrations, at a server's start, cleans what receivers of
// migrations killed before the restore left (staging directories, id
// ranges), finishes the commits a killed server had begun (thaws them),
// and holds frozen every restored container whose source has not
// committed: a server killed between the restore and its freeze leaves it
// running, and its source may have resumed its own copy. Those stay until
// the source's Commit or Abort comes; it returns their names.
func (m *Manager) RecoverMigrations() []string {
	m.recoverMigrations()
	names, _ := m.store.Names()
	var held []string
	for _, name := range names {
		mark, ok := m.uncommitted(name)
		if !ok {
			continue
		}
		if _, mine := incomings.Load(m.incomingKey(name)); mine {
			continue // this process receives it
		}
		if mark.Committed {
			m.finishCommit(context.Background(), name)
			continue
		}
		if mark.Copy {
			m.recoverCopy(name)
			continue
		}
		if mark.Held {
			held = append(held, name)
			continue
		}
		// Killed between its restore and its freeze (or during the
		// restore, which its monitor finishes): frozen once CRIU is done.
		st, err := m.liveState(name)
		if err != nil || st == nil {
			continue // not restored: the source's Abort removes it
		}
		if !isFrozen(st) {
			waitRestoreDone(st.Monitor.PID)
			if _, err := m.Freeze(context.Background(), name, 0); err != nil {
				continue
			}
		}
		mark.Held = true
		if m.setMark(name, mark) == nil {
			held = append(held, name)
		}
	}
	return held
}

// recoverCopy settles a copy placed here whose source's Commit never came:
// started meanwhile, it is this host's (committed); stopped, it goes, as
// its source said the copy failed.
func (m *Manager) recoverCopy(name string) {
	if st, err := m.liveState(name); err == nil && st != nil {
		mark := migrationMark{Name: name, Copy: true, Committed: true}
		if m.setMark(name, mark) == nil {
			m.finishCommit(context.Background(), name)
		}
		return
	}
	m.Delete(context.Background(), name, true)
}

// committedHere is the refusal of an Abort that comes too late: the
// container is this host's.
func committedHere(name string) error {
	return kindError{fmt.Errorf("the migration of %s was committed here: it is this host's now", name), ErrInUse}
}

// waitRestoreDone waits (up to a minute) until the container's monitor
// has no CRIU child (its executable, or the loader it runs through, lies
// in CRIU's directory): a tree CRIU still restores must not be frozen.
func waitRestoreDone(monitor int) {
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		busy := false
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", monitor))
		for _, f := range tasks {
			data, _ := os.ReadFile(f)
			for _, pid := range strings.Fields(string(data)) {
				if exe, _ := os.Readlink("/proc/" + pid + "/exe"); strings.Contains(exe, "criu") {
					busy = true
				}
			}
		}
		if !busy {
			return
		}
	}
}

// uncommitted reads the migration marker of container name, if it has one.
func (m *Manager) uncommitted(name string) (migrationMark, bool) {
	var mark migrationMark
	data, err := os.ReadFile(filepath.Join(m.store.ContainerDir(name), migrationMarker))
	if err != nil || json.Unmarshal(data, &mark) != nil {
		return mark, false
	}
	return mark, true
}

// CommitMigration is the source's word that it removed its copy: the
// container, held frozen since its restore, runs, and is an ordinary one
// here from now on, which no Abort removes. A Commit again (its answer was
// lost) is not an error.
func (m *Manager) CommitMigration(ctx context.Context, name string) error {
	migrated := events.Event{Type: events.Migrated, Direction: events.DirectionIn}
	if in, err := m.incoming(name); err == nil {
		migrated.Peer, migrated.DurationMS = in.offer.Source, since(in.began)
		in.mu.Lock()
		restored := in.restored
		in.mu.Unlock()
		if !restored {
			return fmt.Errorf("the migration of %s is not restored here yet", name)
		}
		incomings.Delete(m.incomingKey(name))
	}
	if config.ValidateName(name) != nil {
		return nil
	}
	mark, ok := m.uncommitted(name)
	if !ok {
		return nil
	}
	// Committed first: from here no Abort deletes it, and a server
	// killed before the marker goes thaws it at its restart.
	mark.Committed = true
	if err := m.setMark(name, mark); err != nil {
		return err
	}
	if err := m.finishCommit(ctx, name); err != nil {
		return err
	}
	m.emit(name, migrated)
	return nil
}

// finishCommit thaws a committed container and removes its marker.
func (m *Manager) finishCommit(ctx context.Context, name string) error {
	if err := m.releaseHeld(ctx, name); err != nil {
		return err
	}
	err := os.Remove(filepath.Join(m.store.ContainerDir(name), migrationMarker))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// releaseHeld lets a held restored container go: its network unlocked
// (migrate.UnlockRestoredNetwork), its tasks thawed, and its NICs announced,
// so that the bridges send its frames here from now on. A container that
// does not run (a copy) has nothing to let go.
func (m *Manager) releaseHeld(ctx context.Context, name string) error {
	st, err := m.liveState(name)
	if err != nil || st == nil {
		return nil
	}
	if err := migrate.UnlockRestoredNetwork(st.Init.PID); err != nil {
		return fmt.Errorf("let %s go: %w", name, err)
	}
	if _, err := m.unfreeze(context.WithoutCancel(ctx), name); err != nil && !errors.Is(err, ErrNotRunning) {
		return err
	}
	if plan, err := network.ReadAttachments(m.store.NICsPath(name)); err == nil {
		network.AnnounceFrom(st.Init.PID, plan, func(string, error) {})
	}
	return nil
}
