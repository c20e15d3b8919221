package manager

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"lodge/internal/cgroup"
	"lodge/internal/events"
	"lodge/internal/store"
	"lodge/lxcfs"
	"lodge/migrate"
	"lodge/rootfs"
)

// Checkpoints of running containers through CRIU (migrate.Dump). A
// checkpoint is a directory under the container,
//
//	ROOT/containers/NAME/checkpoints/ID/
//	    checkpoint.json   what lodge needs to restore (migrate.Record)
//	    *.img, dump.log   CRIU's images and log
//
// made as ID.tmp and renamed in CRIU's post-dump callback, once every image
// is written and before CRIU thaws or kills the tree, so that a checkpoint
// that exists is complete. The preflight (migrate.Preflight) runs first and
// refuses, before anything is frozen, a container CRIU could not dump.

// ErrBlocked marks a checkpoint the preflight refused.
var ErrBlocked = errors.New("cannot be checkpointed")

// CheckpointOptions are what `lodge checkpoint` takes.
type CheckpointOptions struct {
	Stop bool // stop the container once dumped (else it keeps running)
	// Resume makes the next `lodge start` restore this checkpoint instead
	// of booting (a stateful stop); it needs Stop.
	Resume bool
	Dir    string // where to put the checkpoint; "" for the container's checkpoints directory
	Check  bool   // only run the preflight
}

// CheckpointResult describes a checkpoint made (or, with Check, the
// preflight's verdict).
type CheckpointResult struct {
	Name     string            `json:"name"`
	Dir      string            `json:"dir,omitempty"`
	Blockers []migrate.Blocker `json:"blockers"`
	CRIU     string            `json:"criu"`
	Millis   int64             `json:"dump_ms,omitempty"`
	Bytes    int64             `json:"bytes,omitempty"`
	Stopped  bool              `json:"stopped"`
}

func (m *Manager) checkpointsDir(name string) string { return m.store.CheckpointsDir(name) }

// newCheckpointDir names a new checkpoint of container name, in its
// checkpoints directory, by the time.
func (m *Manager) newCheckpointDir(name string) string {
	return filepath.Join(m.checkpointsDir(name), time.Now().UTC().Format("20060102-150405.000"))
}

// Checkpoint dumps a running container with CRIU; see CheckpointOptions.
func (m *Manager) Checkpoint(ctx context.Context, name string, opts CheckpointOptions) (CheckpointResult, error) {
	lock, err := m.store.Lock(ctx, name)
	if err != nil {
		return CheckpointResult{}, err
	}
	defer lock.Unlock()
	res := CheckpointResult{Name: name, Blockers: []migrate.Blocker{}}
	st, err := m.runningInit(name)
	if err != nil {
		return res, err
	}
	criu, err := migrate.FindCRIU(m.host.CRIU.Path)
	if err != nil {
		return res, err
	}
	res.CRIU = criu.String()
	group := cgroup.Open(st.Cgroups)
	if res.Blockers, err = m.preflight(st, group, criu); err != nil || len(res.Blockers) > 0 || opts.Check {
		if err == nil && len(res.Blockers) > 0 {
			err = kindError{fmt.Errorf("container %s %w: %s; it keeps running untouched", name, ErrBlocked, describeBlockers(res.Blockers)), ErrBlocked}
		}
		return res, err
	}
	return m.dump(name, st, group, criu, opts, res, lock)
}

// resumeMarker names the checkpoint the next start resumes from (a
// stateful stop made it).
func (m *Manager) resumeMarker(name string) string { return m.store.ResumeMarkerPath(name) }

// resumePending is the checkpoint a stateful stop left for the next start,
// or "".
func (m *Manager) resumePending(name string) string {
	data, err := os.ReadFile(m.resumeMarker(name))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}

// resume restores a container from the checkpoint its stateful stop left
// (startLocked calls it, the lock held). On success the marker goes; on
// failure it stays with the checkpoint, and the error says how to boot
// instead.
func (m *Manager) resume(ctx context.Context, name, dir string, progress func(string, ...any)) error {
	progress("resuming %s from its checkpoint %s (stateful stop)", name, filepath.Base(dir))
	if _, err := m.restoreLocked(ctx, name, dir, false, progress); err != nil {
		return fmt.Errorf("%w; to boot it instead: lodge start --fresh %s", err, name)
	}
	return nil // restoreLocked removed the marker
}

func (m *Manager) preflight(st *store.State, group *cgroup.Group, criu *migrate.CRIU) ([]migrate.Blocker, error) {
	pids, err := group.Procs()
	if err != nil {
		return nil, err
	}
	blockers, err := migrate.Preflight(st.Init.PID, pids, criu)
	if blockers == nil {
		blockers = []migrate.Blocker{}
	}
	return blockers, err
}

func describeBlockers(bs []migrate.Blocker) string {
	var parts []string
	for _, b := range bs {
		parts = append(parts, b.String())
	}
	return strings.Join(parts, "; ")
}

// dump makes the checkpoint: images in a staging directory (ID.tmp),
// made final (its record written, renamed to ID) when CRIU says every
// image is written, before it thaws or kills the tree. So a checkpoint
// that stopped its container is always complete and listed, and a kill -9
// of lodge checkpoint at any moment leaves either that or the container
// running: CRIU, in its own process group and holding the container's
// lock (it inherits it), finishes alone, and resumes the tree when nobody
// answers its post-dump question. A failed dump leaves the container
// running and thawed (CRIU's own guarantee) and keeps its staging
// directory, for CRIU's log, until the next checkpoint.
func (m *Manager) dump(name string, st *store.State, group *cgroup.Group, criu *migrate.CRIU, opts CheckpointOptions, res CheckpointResult, lock *store.Lock) (CheckpointResult, error) {
	final := opts.Dir
	if final == "" {
		final = m.newCheckpointDir(name)
	}
	staging := final + ".tmp"
	m.removeDumpStaging(name)
	if err := removeOldStaging(staging); err != nil { // a killed dump's, with --dir
		return res, fmt.Errorf("checkpoint %s: %w", name, err)
	}
	if err := os.MkdirAll(staging, 0o700); err != nil {
		return res, fmt.Errorf("checkpoint %s: %w", name, err)
	}
	rec, req, err := m.dumpPlan(name, st, group)
	if err != nil {
		os.RemoveAll(staging)
		return res, err
	}
	req.ImagesDir, req.LogFile, req.LeaveRunning = staging, "dump.log", !opts.Stop
	rec.CRIU = criu.Version
	req.Hold = lock.File()
	completed := false
	var began time.Time
	req.Completed = func() error {
		rec.Uptime = uptimeOf(st) // the tree is frozen now: its clocks' value at the dump
		if err := migrate.WriteRecord(staging, rec); err != nil {
			return err
		}
		if err := os.Rename(staging, final); err != nil {
			return fmt.Errorf("checkpoint %s: %w", name, err)
		}
		completed = true
		// Here, before CRIU kills the tree (--stop): the monitor's
		// stopped event comes after this one.
		m.emit(name, events.Event{Type: events.Checkpointed, DurationMS: since(began)})
		if opts.Resume {
			// Before CRIU kills the tree: a stateful stop whose lodge is
			// killed from here on is still resumed by the next start. If
			// CRIU resumes the tree instead, a later plain stop removes
			// the marker.
			return os.WriteFile(m.resumeMarker(name), []byte(final+"\n"), 0o600)
		}
		return nil
	}
	// Should CRIU itself die with the tree frozen, the next look at the
	// container (list, info, freeze) thaws it: the freeze is ours, not
	// the user's.
	frozen, err := group.Frozen()
	wasFrozen := err != nil || frozen // a user's freeze: left as it is
	if !wasFrozen {
		marker := filepath.Join(m.store.ContainerDir(name), frozenByFile)
		if writeOwnerFile(marker) == nil {
			defer os.Remove(marker)
		}
	}
	// With Stop the monitor tears the container down once CRIU killed its
	// tree, and exits: watched through a pidfd taken now, as stop does, so
	// that a start right after does not race its clean-up.
	monitorFD, monitorErr := openPidfd(st.Monitor)
	if monitorErr == nil {
		defer unix.Close(monitorFD)
	}
	withdrawStop := func() {}
	if opts.Stop {
		withdrawStop = m.expectStop(name, events.ReasonCheckpoint)
	}
	began = time.Now()
	if err := migrate.Dump(criu, req); err != nil {
		if st.Init.Alive() {
			withdrawStop()
		}
		if !wasFrozen {
			// CRIU thaws the tree when it fails, but not when it dies
			// (killed): then the tree is left frozen.
			group.Thaw()
		}
		if completed {
			// The checkpoint is complete and listed; CRIU failed after it.
			// If the container still runs, a stateful stop's marker must
			// not make a later start resume this checkpoint over a root
			// filesystem that has moved on.
			if opts.Resume && st.Init.Alive() {
				os.Remove(m.resumeMarker(name))
			}
			return res, fmt.Errorf("checkpoint %s: %w; the checkpoint %s is complete", name, err, final)
		}
		return res, fmt.Errorf("checkpoint %s: %w; the container keeps running", name, err)
	}
	res.Millis = time.Since(began).Milliseconds()
	res.Dir, res.Bytes, res.Stopped = final, dirBytes(final), opts.Stop
	if opts.Stop && monitorErr == nil {
		waitPidfd(monitorFD, 10*time.Second)
	}
	return res, nil
}

// removeOldStaging removes staging directory dir if a dump left it (empty,
// or holding CRIU's log), and refuses to touch anything else found there.
func removeOldStaging(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if _, logErr := os.Stat(filepath.Join(dir, "dump.log")); err != nil || (len(entries) > 0 && logErr != nil) {
		return fmt.Errorf("%s exists and is not a checkpoint lodge left: remove it, or choose another --dir", dir)
	}
	return os.RemoveAll(dir)
}

// removeDumpStaging removes the staging directories (ID.tmp) left in the
// container's checkpoints directory by dumps that failed or were killed.
// Its caller holds the container's lock, which a dump at work holds too
// (its CRIU inherits it): none of them is in use.
func (m *Manager) removeDumpStaging(name string) {
	entries, _ := os.ReadDir(m.checkpointsDir(name))
	for _, e := range entries {
		if e.IsDir() && strings.HasSuffix(e.Name(), ".tmp") {
			os.RemoveAll(filepath.Join(m.checkpointsDir(name), e.Name()))
		}
	}
}

// uptimeOf is how long the running container has run: since its start,
// plus what it had run before it was restored.
func uptimeOf(st *store.State) time.Duration {
	return time.Since(st.StartedAt) + st.UptimeBase
}

// dumpPlan is what a dump of the running container declares: its external
// mounts (lodge's binds, the views it has mounted), its console, its
// freezer, and the record a restore needs.
func (m *Manager) dumpPlan(name string, st *store.State, group *cgroup.Group) (migrate.Record, migrate.DumpRequest, error) {
	rec := migrate.Record{
		Container: name, Created: time.Now().UTC(), InitPID: st.Init.PID,
		Cgroups: st.Cgroups, HostID: st.HostID, IDCount: st.IDCount,
		Uptime: uptimeOf(st),
	}
	if id, err := os.ReadFile(m.store.BootIDPath(name)); err == nil {
		rec.BootID = strings.TrimSpace(string(id))
	}
	req := migrate.DumpRequest{PID: st.Init.PID, FreezeCgroup: group.FreezerDir()}
	if req.FreezeCgroup == "" {
		return rec, req, fmt.Errorf("checkpoint %s: its cgroup has no freezer", name)
	}
	var err error
	if rec.Subgroups, err = group.Subgroups(); err != nil {
		return rec, req, err
	}
	if rec.NICs, err = m.recordNICs(name); err != nil {
		return rec, req, err
	}
	mounted, err := mountPoints(st.Init.PID)
	if err != nil {
		return rec, req, err
	}
	var targets []string
	for _, e := range rootfs.ExternalMounts("/proc") {
		targets = append(targets, e.Target)
	}
	for _, v := range lxcfs.Mounts(name) {
		targets = append(targets, v[1])
	}
	for _, t := range targets {
		if mounted[t] {
			req.Mounts = append(req.Mounts, migrate.ExternalMount{Target: t, Key: "lodge:" + t})
			rec.Mounts = append(rec.Mounts, t)
		}
	}
	tty, err := consoleTTY(st.Init.PID)
	if err != nil {
		return rec, req, err
	}
	req.TTYs, rec.Console = []string{tty}, tty
	return rec, req, nil
}

// mountPoints are the mount points of process pid's mount namespace.
func mountPoints(pid int) (map[string]bool, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	mounts, err := cgroup.ParseMountinfo(f)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, mi := range mounts {
		out[mi.Mountpoint] = true
	}
	return out, nil
}

// consoleTTY is CRIU's name of the container's console, tty[RDEV:DEV]:
// the pty slave's device number and its devpts instance's, in hex.
func consoleTTY(pid int) (string, error) {
	var s unix.Stat_t
	if err := unix.Stat("/proc/"+strconv.Itoa(pid)+"/root/dev/console", &s); err != nil {
		return "", fmt.Errorf("the container's console: %w", err)
	}
	return fmt.Sprintf("tty[%x:%x]", s.Rdev, s.Dev), nil
}

func dirBytes(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// RestoreOptions are what `lodge restore` takes.
type RestoreOptions struct {
	Dir string // the checkpoint; "" for the container's newest
	// Hold: the restored container is frozen (its cgroup's freezer)
	// before its processes run again, and stays so until Unfreeze. A
	// migration's restore holds it until the source's commit.
	Hold bool
}

// Restore brings a stopped container back from a checkpoint: its monitor
// makes its cgroups, root and external mounts and has CRIU restore the
// processes as its children. It returns the checkpoint used. On failure
// nothing of the container runs and the checkpoint stays.
func (m *Manager) Restore(ctx context.Context, name string, opts RestoreOptions, progress func(string, ...any)) (string, error) {
	if progress == nil {
		progress = func(string, ...any) {}
	}
	lock, err := m.store.Lock(ctx, name)
	if err != nil {
		return "", err
	}
	defer lock.Unlock()
	return m.restoreLocked(ctx, name, opts.Dir, opts.Hold, progress)
}

func (m *Manager) restoreLocked(ctx context.Context, name, dir string, hold bool, progress func(string, ...any)) (string, error) {
	if st, err := m.liveState(name); err != nil {
		return "", err
	} else if st != nil {
		return "", fmt.Errorf("container %q %w (pid %d); stop it first, or checkpoint it again", name, ErrRunning, st.Init.PID)
	}
	if err := m.cleanupStale(name); err != nil {
		return "", err
	}
	var err error
	if dir == "" {
		if dir, err = m.newestCheckpoint(name); err != nil {
			return "", err
		}
	}
	rec, err := migrate.ReadRecord(dir)
	if err != nil {
		return "", err
	}
	cfg, err := m.loadConfig(name)
	if err != nil {
		return "", err
	}
	if err := m.attachNetworks(ctx, name, cfg, progress); err != nil {
		return dir, fmt.Errorf("restore %s from %s: %w; the checkpoint is kept", name, dir, err)
	}
	if err := m.sameNICs(name, rec); err != nil {
		m.releaseNICsOrWarn(name, progress)
		return dir, invalid(fmt.Errorf("restore %s from %s: %w; the checkpoint is kept", name, dir, err))
	}
	m.ensureViews(cfg, progress)
	args := []string{"restore", dir}
	if hold {
		args = append(args, "frozen")
	}
	began := time.Now()
	if err := m.runMonitor(ctx, name, progress, args...); err != nil {
		m.releaseNICsOrWarn(name, progress)
		return dir, fmt.Errorf("restore %s from %s: %w; the checkpoint is kept", name, dir, err)
	}
	if !hold { // a migration's restore: reported at its commit (migrated, in)
		m.emit(name, events.Event{Type: events.Restored, DurationMS: since(began)})
	}
	if len(cfg.Proxies) > 0 {
		if err := m.refreshForwards(name, cfg); err != nil {
			progress("warning: port forwards of %s: %v", name, err)
		}
	}
	if m.resumePending(name) == dir {
		os.Remove(m.resumeMarker(name)) // resumed (or restored by hand): the next start boots
	}
	return dir, nil
}

// CheckpointInfo is one complete checkpoint of a container, as `lodge
// info` lists it.
type CheckpointInfo struct {
	Name    string    `json:"name" yaml:"name"`
	Dir     string    `json:"dir" yaml:"dir"`
	Created time.Time `json:"created" yaml:"created"`
	Bytes   int64     `json:"bytes" yaml:"bytes"`
	// Resume: the next lodge start resumes from it (a stateful stop).
	Resume bool `json:"resume,omitempty" yaml:"resume,omitempty"`
}

// checkpointList lists the container's complete checkpoints, oldest
// first: the directories under its checkpoints directory that hold their
// record. A staging directory (ID.tmp: a dump that failed or was killed)
// is never one.
func (m *Manager) checkpointList(name string) []CheckpointInfo {
	entries, _ := os.ReadDir(m.checkpointsDir(name))
	resume := m.resumePending(name)
	var out []CheckpointInfo
	for _, e := range entries {
		if !e.IsDir() || strings.HasSuffix(e.Name(), ".tmp") {
			continue
		}
		dir := filepath.Join(m.checkpointsDir(name), e.Name())
		rec, err := migrate.ReadRecord(dir)
		if err != nil {
			continue
		}
		out = append(out, CheckpointInfo{Name: e.Name(), Dir: dir, Created: rec.Created, Bytes: dirBytes(dir), Resume: dir == resume})
	}
	return out
}

// newestCheckpoint is the container's newest complete checkpoint.
func (m *Manager) newestCheckpoint(name string) (string, error) {
	entries, err := os.ReadDir(m.checkpointsDir(name))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	newest := ""
	for _, e := range entries {
		if e.IsDir() && !strings.HasSuffix(e.Name(), ".tmp") && e.Name() > newest {
			newest = e.Name()
		}
	}
	if newest == "" {
		return "", kindError{fmt.Errorf("container %s has no checkpoint; make one with lodge checkpoint %s", name, name), ErrNotFound}
	}
	return filepath.Join(m.checkpointsDir(name), newest), nil
}
