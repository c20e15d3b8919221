package manager

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"lodge/config"
	"lodge/internal/cgroup"
	"lodge/internal/events"
	"lodge/internal/idmap"
	"lodge/internal/store"
	"lodge/migrate"
	"lodge/network"
	"lodge/storage"
)

// MigrateOptions tune a migration.
type MigrateOptions struct {
	// Live asks for a shorter freeze (iterative pre-copy or post-copy)
	// where both hosts allow one. Neither is built yet: the migration is
	// stop-and-copy, and the result says what the hosts would allow.
	Live bool
	// Peer names the target in the event log (the remote's name).
	Peer string
}

// MigrateResult says what a migration did and how long each phase took.
type MigrateResult struct {
	Name     string            `json:"name"`
	Mode     string            `json:"mode"`           // "stop-and-copy"
	LiveNote string            `json:"live,omitempty"` // with Live: why this mode and not the others
	Downtime time.Duration     `json:"downtime_ns"`
	Total    time.Duration     `json:"total_ns"`
	Bytes    int64             `json:"bytes"` // file data and images sent
	Phases   []MigratePhase    `json:"phases"`
	Blockers []migrate.Blocker `json:"blockers,omitempty"`
	// IDRemap is set when the container's id range was not free on the
	// target, which gave it one of its own.
	IDRemap *IDRemap `json:"id_remap,omitempty"`
}

// IDRemap is the id range a container had here and the one the target
// gave it.
type IDRemap struct {
	From idmap.Range `json:"from"`
	To   idmap.Range `json:"to"`
}

// MigratePhase is one phase's time and bytes.
type MigratePhase struct {
	Name  string        `json:"name"`
	Time  time.Duration `json:"time_ns"`
	Bytes int64         `json:"bytes,omitempty"`
}

// ErrMigrationAfter marks a migration that failed after the target ran the
// container: its message says what state each side is in.
var ErrMigrationAfter = errors.New("migration failed after the target started the container")

// Migrate moves running container name to target, stop-and-copy:
//
//  1. preflight on both sides, before anything is frozen (the checkpoint
//     preflight here; name, id range, CRIU, CPU, image and layers,
//     networks, disk there: AcceptMigration; then, here, the target's
//     CRIU features: checkTargetCRIU);
//  2. the layers the target lacks and the tree, sent while it runs;
//  3. the dump (CRIU freezes the tree through its freezer cgroup); in its
//     post-dump callback, the tree still frozen: the tree's delta, the
//     images, and the restore on the target;
//  4. only once the target runs it, CRIU kills the tree here, and the
//     container is deleted here.
//
// Any failure before the target runs leaves the container running here,
// thawed (CRIU resumes the tree when its callback fails, or when lodge is
// killed and never answers it), and the target is told to remove all of
// it.
func (m *Manager) Migrate(ctx context.Context, name string, target MigrationTarget, opts MigrateOptions, progress func(string, ...any)) (MigrateResult, error) {
	if progress == nil {
		progress = func(string, ...any) {}
	}
	o := &outgoing{m: m, ctx: ctx, name: name, target: target, progress: progress, began: time.Now(), peer: opts.Peer,
		res: MigrateResult{Name: name, Mode: "stop-and-copy"}}
	lock, err := m.store.Lock(ctx, name)
	if err != nil {
		return o.res, err
	}
	o.lock = lock
	defer func() {
		if !o.unlocked {
			lock.Unlock()
		}
	}()
	if err := o.preflight(opts); err != nil {
		return o.res, err
	}
	// From here on the target holds something of it: a failure aborts there.
	if err := o.checkTarget(); err != nil {
		return o.abort(err)
	}
	if err := o.sendLayers(); err != nil {
		return o.abort(err)
	}
	if err := o.sendRootfs(); err != nil {
		return o.abort(err)
	}
	return o.dumpAndFinish()
}

// outgoing is one migration of a container from this host: what its
// phases share.
type outgoing struct {
	m        *Manager
	ctx      context.Context
	name     string
	target   MigrationTarget
	progress func(string, ...any)
	began    time.Time
	peer     string // the target's name, for the event log
	res      MigrateResult
	lock     *store.Lock
	unlocked bool

	st      *store.State
	group   *cgroup.Group
	criu    *migrate.CRIU
	offer   MigrationOffer
	answer  MigrationAnswer
	backend string
	state   *migrate.TreeState // the root filesystem as the live pass sent it

	// targetRunning: the target restored it (Restore answered).
	targetRunning bool
	frozenAt      time.Time // the freezer first seen frozen during the dump
	runningAt     time.Time // it runs there (the commit's answer)
}

func (o *outgoing) ticker(what string) func(int64) {
	return func(sent int64) { o.progress("  %s: %d MiB sent", what, sent>>20) }
}

func (o *outgoing) phase(what string, since time.Time, bytes int64) {
	o.res.Phases = append(o.res.Phases, MigratePhase{Name: what, Time: time.Since(since), Bytes: bytes})
	o.res.Bytes += bytes
}

// abort ends a migration that failed before the target ran it: the
// target drops what it holds, and the container keeps running here.
func (o *outgoing) abort(err error) (MigrateResult, error) {
	if o.targetRunning {
		return o.res, err
	}
	defer o.announceHere()
	if aerr := o.askAbort(); aerr != nil {
		return o.res, fmt.Errorf("migrate %s: %w; it keeps running here, and removing it from the target failed: %v", o.name, err, aerr)
	}
	return o.res, fmt.Errorf("migrate %s: %w; it keeps running here, and the target keeps nothing of it", o.name, err)
}

// announceHere has the container's NICs announce themselves here again
// once it goes on here: a target that restored it announced them there,
// and the bridges would send its frames there until it sends something.
func (o *outgoing) announceHere() {
	if o.st == nil {
		return
	}
	if plan, err := network.ReadAttachments(o.m.store.NICsPath(o.name)); err == nil {
		network.AnnounceFrom(o.st.Init.PID, plan, func(string, error) {})
	}
}

// askAbort asks the target to drop the migration until it answers.
func (o *outgoing) askAbort() error {
	return untilAnswered(o.progress, "abort", func(ctx context.Context) error { return o.target.Abort(ctx, o.name) })
}

// preflight checks, here and then on the target, that the container can
// go, before anything is frozen; nothing is left anywhere when it fails.
func (o *outgoing) preflight(opts MigrateOptions) error {
	m, name := o.m, o.name
	var err error
	if o.st, err = m.runningInit(name); err != nil {
		return err
	}
	if o.criu, err = migrate.FindCRIU(m.host.CRIU.Path); err != nil {
		return err
	}
	o.group = cgroup.Open(o.st.Cgroups)
	t0 := time.Now()
	o.progress("preflight of %s here", name)
	if o.res.Blockers, err = m.preflight(o.st, o.group, o.criu); err != nil {
		return err
	}
	if len(o.res.Blockers) > 0 {
		return kindError{fmt.Errorf("container %s %w: %s; it keeps running here", name, ErrBlocked, describeBlockers(o.res.Blockers)), ErrBlocked}
	}
	o.offer, o.backend, err = m.migrationOffer(o.ctx, name, o.st.HostID, o.st.IDCount, o.criu.Version)
	if err == nil {
		o.offer.CPU, err = migrate.LocalCPU(false) // the target checks it
	}
	if err != nil {
		return fmt.Errorf("migrate %s: %w; it keeps running here", name, err)
	}
	o.progress("preflight of %s on the target", name)
	if o.answer, err = o.target.Preflight(o.ctx, o.offer); err != nil {
		return fmt.Errorf("migrate %s: the target refused: %w; it keeps running here", name, err)
	}
	o.phase("preflight", t0, 0)
	if to := (idmap.Range{HostID: o.answer.HostID, Size: o.answer.IDCount}); to.Size > 0 && (to.HostID != o.offer.HostID || to.Size != o.offer.IDCount) {
		o.res.IDRemap = &IDRemap{From: idmap.Range{HostID: o.offer.HostID, Size: o.offer.IDCount}, To: to}
		o.progress("the id range %s of %s is not free on the target: it gets %s there (the target rewrites the checkpoint's id maps)", o.res.IDRemap.From, name, to)
	}
	if opts.Live {
		o.res.LiveNote = liveNote(o.criu, o.answer)
		o.progress("--live: %s", o.res.LiveNote)
	}
	return nil
}

// checkTarget checks the target's answer: its CRIU restores what the
// dump here will use, and it asks only for layers of the offer.
func (o *outgoing) checkTarget() error {
	needs, err := migrate.DumpFeatures(o.st.Init.PID)
	if err == nil {
		err = checkTargetCRIU(o.name, o.criu.Version, needs, o.answer)
	}
	if err != nil {
		return err
	}
	return checkAskedLayers(o.answer.MissingLayers, o.offer.Layers, o.name)
}

// sendLayers sends the shared overlay layers the target lacks.
func (o *outgoing) sendLayers() error {
	t0 := time.Now()
	var layerBytes int64
	lowers := o.m.overlay().Lowers(storage.Tree{Layers: o.answer.MissingLayers})
	for i, id := range o.answer.MissingLayers {
		o.progress("sending layer %s (%d of %d)", id, i+1, len(o.answer.MissingLayers))
		_, stats, err := treeSend{dir: lowers[i], tick: o.ticker("layer " + id),
			receive: func(r io.Reader) error { return o.target.ReceiveLayer(o.ctx, o.name, id, r) }}.run(o.ctx)
		if err != nil {
			return fmt.Errorf("send layer %s: %w", id, err)
		}
		layerBytes += stats.Bytes
	}
	if len(o.answer.MissingLayers) > 0 {
		o.phase("layers", t0, layerBytes)
	}
	return nil
}

// sendRootfs sends the container's tree while it runs; the dump's
// callback sends what changed since.
func (o *outgoing) sendRootfs() error {
	t0 := time.Now()
	o.progress("sending the root filesystem of %s (%s storage) while it runs", o.name, o.backend)
	state, stats, err := treeSend{dir: o.m.store.RootfsPath(o.name), skip: treeSkip(o.backend), tick: o.ticker(fmt.Sprintf("root filesystem (about %d MiB)", o.offer.Bytes>>20)),
		receive: func(r io.Reader) error { return o.target.ReceiveRootfs(o.ctx, o.name, r) }}.run(o.ctx)
	if err != nil {
		return fmt.Errorf("send the root filesystem: %w", err)
	}
	o.state = state
	o.phase("rootfs", t0, stats.Bytes)
	return o.ctx.Err()
}

// dumpAndFinish dumps the container, restores it on the target from
// CRIU's post-dump callback (the tree frozen here), then commits it there
// and removes it here.
func (o *outgoing) dumpAndFinish() (MigrateResult, error) {
	m, name := o.m, o.name
	rec, req, err := m.dumpPlan(name, o.st, o.group)
	if err != nil {
		return o.abort(err)
	}
	m.removeDumpStaging(name)
	images := filepath.Join(m.checkpointsDir(name), "migration-"+time.Now().UTC().Format("20060102-150405.000")+".tmp")
	if err := os.MkdirAll(images, 0o700); err != nil {
		return o.abort(err)
	}
	defer os.RemoveAll(images)
	rec.CRIU = o.criu.Version
	req.ImagesDir, req.LogFile, req.LeaveRunning, req.Hold = images, "dump.log", false, o.lock.File()
	var dumpStart time.Time
	var callbackErr error
	req.Completed = func() error {
		o.res.Phases = append(o.res.Phases, MigratePhase{Name: "dump", Time: time.Since(dumpStart)})
		callbackErr = o.restoreThere(images, rec)
		return callbackErr
	}
	frozenWatch := watchFrozen(o.group, &o.frozenAt)
	dumpStart = time.Now()
	o.progress("checkpointing %s", name)
	monitorFD, monitorErr := openPidfd(o.st.Monitor)
	if monitorErr == nil {
		defer unix.Close(monitorFD)
	}
	withdrawStop := m.expectStop(name, events.ReasonMigrated)
	dumpErr := migrate.Dump(o.criu, req)
	frozenWatch()
	if !o.targetRunning {
		withdrawStop()
		// CRIU resumed the tree (its callback failed) or failed itself;
		// should CRIU have died, the tree is still frozen.
		if frozen, err := o.group.Frozen(); err == nil && frozen {
			o.group.Thaw()
		}
		why := callbackErr
		if why == nil {
			why = dumpErr
		}
		if why == nil {
			why = errors.New("the dump ended without the target running it")
		}
		return o.abort(why)
	}
	if o.frozenAt.IsZero() || o.frozenAt.After(o.runningAt) {
		o.frozenAt = dumpStart // an upper bound
	}
	monitorGone := false
	if dumpErr != nil {
		// The target holds its copy; CRIU failed after the callback (in
		// killing the tree here?). The monitor here ends once the tree
		// is gone: then the target's copy is the one to live, else this
		// one goes on and the target's is removed.
		monitorGone = monitorErr == nil && waitPidfd(monitorFD, 10*time.Second)
		if !monitorGone {
			if aerr := o.askAbort(); aerr != nil {
				return o.res, kindError{fmt.Errorf("migrate %s: %w: CRIU failed after the dump here (%v) and the tree may live on here; the target holds its copy frozen, and removing it there failed: %v; check it here with lodge list",
					name, ErrMigrationAfter, dumpErr, aerr), ErrMigrationAfter}
			}
			if frozen, err := o.group.Frozen(); err == nil && frozen {
				o.group.Thaw()
			}
			withdrawStop()
			o.announceHere()
			return o.res, fmt.Errorf("migrate %s: CRIU failed after the dump: %v; it keeps running here, and the target keeps nothing of it", name, dumpErr)
		}
	}
	if err := o.commit(); err != nil {
		return o.res, err
	}
	return o.removeHere(func() {
		if monitorErr == nil && !monitorGone {
			waitPidfd(monitorFD, 10*time.Second)
		}
	})
}

// restoreThere is the dump's post-dump callback, with the tree frozen
// here: the root filesystem's changes, the images, and the restore on the
// target. An error makes CRIU resume the tree here.
func (o *outgoing) restoreThere(images string, rec migrate.Record) error {
	name := o.name
	if err := migrate.WriteRecord(images, rec); err != nil {
		return err
	}
	o.progress("sending the changes to the root filesystem of %s (frozen)", name)
	t0 := time.Now()
	_, delta, err := treeSend{dir: o.m.store.RootfsPath(name), prev: o.state, skip: treeSkip(o.backend), tick: o.ticker("root filesystem changes"),
		receive: func(r io.Reader) error { return o.target.ReceiveRootfs(o.ctx, name, r) }}.run(o.ctx)
	if err != nil {
		return fmt.Errorf("send the root filesystem's changes: %w", err)
	}
	o.phase(fmt.Sprintf("rootfs delta (%d entries, %d deleted)", delta.Entries, delta.Deleted), t0, delta.Bytes)
	t0 = time.Now()
	o.progress("sending the checkpoint of %s", name)
	_, img, err := treeSend{dir: images, skip: func(rel string) bool { return rel == "dump.log" }, tick: o.ticker("checkpoint"),
		receive: func(r io.Reader) error { return o.target.ReceiveCheckpoint(o.ctx, name, r) }}.run(o.ctx)
	if err != nil {
		return fmt.Errorf("send the checkpoint: %w", err)
	}
	o.phase("checkpoint transfer", t0, img.Bytes)
	t0 = time.Now()
	o.progress("restoring %s on the target", name)
	done, err := o.target.Restore(o.ctx, name)
	if err != nil {
		// Its answer may be lost with the target holding it (frozen,
		// RestoreMigration): removed there before CRIU resumes the tree
		// here. A target whose server was killed is asked again until
		// its restarted server answers, the tree frozen here meanwhile.
		if aerr := o.askAbort(); aerr != nil {
			return fmt.Errorf("restore on the target: %w (and removing it there failed: %v; the target holds its copy frozen, uncommitted: delete it there)", err, aerr)
		}
		return fmt.Errorf("restore on the target: %w", err)
	}
	o.phase("restore on the target", t0, 0)
	o.runningAt, o.targetRunning = done.Running, true
	return nil
}

// commit lets the target's copy run: the target holds it frozen until
// then, and is asked until it answers (a killed server's successor does),
// this copy being gone.
func (o *outgoing) commit() error {
	name := o.name
	t0 := time.Now()
	o.progress("committing %s on the target", name)
	if err := untilAnswered(o.progress, "commit", func(cctx context.Context) error { return o.target.Commit(cctx, name) }); err != nil {
		return kindError{fmt.Errorf("migrate %s: %w: the target holds it frozen and did not take the commit: %v; its processes are gone here, and its stopped definition is kept here: do not start it; run lodge unfreeze %s on the target (it commits the migration there), then lodge delete %s here",
			name, ErrMigrationAfter, err, name, name), ErrMigrationAfter}
	}
	if now := time.Now(); now.After(o.runningAt) {
		o.runningAt = now // it runs there once the commit thawed it
	}
	o.res.Downtime = o.runningAt.Sub(o.frozenAt)
	o.phase("commit", t0, 0)
	return nil
}

// removeHere deletes the container here once it runs on the target,
// after its monitor here ended (waitMonitor).
func (o *outgoing) removeHere(waitMonitor func()) (MigrateResult, error) {
	t0 := time.Now()
	o.progress("removing %s here", o.name)
	waitMonitor()
	// After the monitor's stopped event (reason migrated), before deleted.
	o.m.emit(o.name, events.Event{Type: events.Migrated, Direction: events.DirectionOut, Peer: o.peer,
		DurationMS: since(o.began), DowntimeMS: events.Millis(o.res.Downtime)})
	o.lock.Unlock()
	o.unlocked = true
	if err := o.m.Delete(context.Background(), o.name, true); err != nil {
		return o.res, kindError{fmt.Errorf("migrate %s: %w: it runs on the target, and removing it here failed: %v; remove it with lodge delete --force %s", o.name, ErrMigrationAfter, err, o.name), ErrMigrationAfter}
	}
	o.phase("source removed", t0, 0)
	o.res.Total = time.Since(o.began)
	return o.res, nil
}

// migrationOffer describes container name for the target's preflight; it
// returns its storage backend's name too.
func (m *Manager) migrationOffer(ctx context.Context, name string, hostID, count uint32, criuVersion int) (MigrationOffer, string, error) {
	offer := MigrationOffer{Name: name, HostID: hostID, IDCount: count, CRIU: criuVersion}
	offer.Source, _ = os.Hostname()
	if snaps, _ := os.ReadDir(m.snapshotsDir(name)); len(snaps) > 0 {
		return offer, "", fmt.Errorf("it has snapshots, which a migration does not carry yet: delete them or copy them first")
	}
	b, rec, err := storage.ForContainer(m.store.Root, m.store.ContainerDir(name))
	if err != nil {
		return offer, "", err
	}
	offer.Backend, offer.Image = b.Name(), rec.Image
	_, err = os.Stat(m.store.ShiftPath(name))
	offer.Shifted = err == nil
	if offer.Shifted {
		// The target's restore idmaps the tree, and shift.json does not
		// go: a chowned tree would be shifted twice there.
		return offer, "", fmt.Errorf("its files were chowned into this host's id range (a chown shift: rootfs.shift, or a filesystem without idmapped mounts), which a migration does not carry: only trees that keep natural ids on disk (idmapped mounts) go")
	}
	if rec.Source != "" {
		return offer, "", fmt.Errorf("it shares data with %s (a copy-on-write clone), which a migration does not carry yet", rec.Source)
	}
	if offer.Config, err = os.ReadFile(m.store.ConfigPath(name)); err != nil {
		return offer, "", err
	}
	cfg, err := m.loadConfig(name)
	if err != nil {
		return offer, "", err
	}
	for _, n := range cfg.Networks {
		if n.Kind() == config.NICBridged {
			net := n.Network
			if net == "" {
				net = config.DefaultNetwork
			}
			offer.Networks = append(offer.Networks, net)
		}
	}
	rootfsDir := m.store.RootfsPath(name)
	if b.Name() == storage.OverlayName {
		t, err := storage.ReadTree(rootfsDir)
		if err != nil {
			return offer, "", err
		}
		offer.Layers, offer.BaseImage = t.Layers, t.Image
	}
	if u, err := b.Usage(ctx, rootfsDir); err == nil {
		offer.Bytes = u.Bytes
	}
	if limit := int64(cfg.Limits.Memory); limit > 0 {
		offer.Bytes += limit // the images hold its memory, at most this
	}
	return offer, b.Name(), nil
}

// treeSkip leaves out what a backend's tree holds that is not the
// container's: overlay's work directory's contents.
func treeSkip(backend string) func(string) bool {
	if backend != storage.OverlayName {
		return nil
	}
	return func(rel string) bool { return strings.HasPrefix(rel, "work/") }
}

// treeSend sends the tree at dir (or its delta since prev) to receive,
// through a pipe, calling tick with the bytes sent so far every second.
type treeSend struct {
	dir     string
	prev    *migrate.TreeState
	skip    func(string) bool
	receive func(io.Reader) error
	tick    func(sent int64)
}

func (s treeSend) run(ctx context.Context) (*migrate.TreeState, migrate.TreeStats, error) {
	pr, pw := io.Pipe()
	type sent struct {
		state *migrate.TreeState
		stats migrate.TreeStats
		err   error
	}
	done := make(chan sent, 1)
	counted := &countingWriter{w: pw}
	go func() {
		st, stats, err := migrate.SendTree(ctx, counted, s.dir, s.prev, s.skip)
		pw.CloseWithError(err)
		done <- sent{st, stats, err}
	}()
	stopTicks := make(chan struct{})
	ticked := make(chan struct{})
	go func() {
		defer close(ticked)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stopTicks:
				return
			case <-t.C:
				if s.tick != nil {
					s.tick(counted.n.Load())
				}
			}
		}
	}()
	recvErr := s.receive(pr)
	pr.CloseWithError(errReceiverStopped)
	r := <-done
	close(stopTicks)
	<-ticked
	if recvErr != nil && (r.err == nil || errors.Is(r.err, errReceiverStopped)) {
		return nil, r.stats, recvErr // the receiver's failure stopped the sender
	}
	if r.err != nil {
		return nil, r.stats, r.err
	}
	if recvErr != nil {
		return nil, r.stats, recvErr
	}
	return r.state, r.stats, nil
}

var errReceiverStopped = errors.New("the receiver stopped reading")

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// watchFrozen notes in at when the group is first seen frozen (CRIU freezes
// it early in the dump), polling every few milliseconds until stop is
// called.
func watchFrozen(group *cgroup.Group, at *time.Time) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			if frozen, err := group.Frozen(); err == nil && frozen {
				*at = time.Now()
				return
			}
			select {
			case <-quit:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	return func() { close(quit); <-done }
}

// liveNote says why a live migration between these hosts is stop-and-copy:
// what each faster mode needs, and whether both hosts have it.
func liveNote(criu *migrate.CRIU, there MigrationAnswer) string {
	var pre, post string
	features, _ := criu.CheckFeatures() // a failed check: neither mode here
	if !features.MemTrack || !there.MemTrack {
		pre = "pre-copy needs soft-dirty memory tracking (CONFIG_MEM_SOFT_DIRTY): " + lacking(!features.MemTrack, !there.MemTrack)
	} else {
		pre = "pre-copy: both hosts track dirty memory, but lodge does not do pre-copy yet"
	}
	// The source serves pages (CRIU's lazy pages); the restored tasks
	// open the userfaultfd on the target, inside the container's user
	// namespace, which only vm.unprivileged_userfaultfd=1 allows.
	lazyHere := features.LazyPages
	lazyThere := there.LazyPages && there.UnprivilegedUserfault
	if !lazyHere || !lazyThere {
		post = "post-copy needs CRIU's lazy pages on both hosts and, on the target, userfaultfd for the container's user namespace (vm.unprivileged_userfaultfd=1): " + lacking(!lazyHere, !lazyThere)
	} else {
		post = "post-copy: both hosts allow it, but lodge does not do post-copy yet"
	}
	return "stop-and-copy: " + pre + "; " + post
}

// lacking says which hosts lack something.
func lacking(here, there bool) string {
	switch {
	case here && there:
		return "both hosts lack it"
	case here:
		return "this host lacks it"
	}
	return "the target lacks it"
}

// finalAnswer tells a refusal the target gave (an error of a known kind:
// asking again gets the same) from no answer (a connection refused or cut,
// a server restarting, another process still holding the migration).
func finalAnswer(err error) bool {
	for _, kind := range []error{ErrInvalid, ErrExists, ErrInUse, ErrNotFound, ErrIncompatible, ErrRunning, ErrNotRunning} {
		if errors.Is(err, kind) {
			return true
		}
	}
	return false
}

// untilAnswered calls a target's Abort or Commit until it answers, for a
// minute: a target whose server was killed answers once it is restarted,
// and until then only this side knows which copy must live.
func untilAnswered(progress func(string, ...any), what string, call func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for tries := 1; ; tries++ {
		err := call(ctx)
		if err == nil || finalAnswer(err) {
			return err
		}
		if tries == 1 {
			progress("the target did not take the %s (%v): asking again for a minute", what, err)
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(500 * time.Millisecond):
		}
	}
}
