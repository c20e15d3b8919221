package manager

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"lodge/config"
	"lodge/internal/bootorder"
)

// Autostart at host boot: every container with boot.autostart, and those
// they name in boot.after, started in boot.after order, as many at once as
// the order and a bound allow; a container waits for those it names to be
// ready. shutdown-all's checkpoints are restored here too.

// BootOptions say how Autostart and ShutdownAll go about it.
type BootOptions struct {
	// Parallel bounds how many containers start (or stop) at once; 0:
	// DefaultParallel.
	Parallel int
	// Progress is told of each step as it happens, a line per call.
	Progress func(format string, args ...any)
}

// DefaultParallel is how many containers autostart starts at once: a
// start mostly waits (for the monitor, for init), so twice the host's CPUs,
// and at least 4.
func DefaultParallel() int { return max(4, 2*runtime.NumCPU()) }

// Boot outcomes of one container.
const (
	BootReady   = "ready"   // started (or found running) and ready
	BootFailed  = "failed"  // its start, its init or its readiness failed
	BootSkipped = "skipped" // not started: one it needs failed or is missing
)

// BootResult is what autostart did with one container.
type BootResult struct {
	Name    string `json:"name"`
	Outcome string `json:"outcome"` // BootReady, BootFailed or BootSkipped
	// Why it was started: boot.autostart, others need it (NeededBy), or it
	// had a checkpoint from shutdown-all to restore.
	Autostart bool     `json:"autostart"`
	NeededBy  []string `json:"needed_by,omitempty"`
	// AlreadyRunning: it ran before autostart (it was only waited for).
	AlreadyRunning bool `json:"already_running,omitempty"`
	// Restored: its processes came back from shutdown-all's checkpoint.
	Restored bool `json:"restored,omitempty"`
	// RestoreError: that restore failed, and the container was booted
	// afresh instead (its checkpoint is kept).
	RestoreError string     `json:"restore_error,omitempty"`
	StartedAt    *time.Time `json:"started_at,omitempty"` // when its start began
	ReadyAt      *time.Time `json:"ready_at,omitempty"`
	Reason       string     `json:"reason,omitempty"` // failed or skipped: why
}

// Autostart starts every boot.autostart container that does not run, and
// what they need; see BootOptions. It returns one result per container it
// had to do with, sorted by name; a container's failure is in its result,
// the error is for autostart itself failing.
func (m *Manager) Autostart(ctx context.Context, opts BootOptions) ([]BootResult, error) {
	opts = opts.withDefaults()
	cfgs, broken, err := m.bootConfigs()
	if err != nil {
		return nil, err
	}
	g := graphOf(cfgs, broken, nil)
	b := &booter{m: m, opts: opts, cfgs: cfgs, broken: broken, results: map[string]*BootResult{}}
	wanted := g.Needs(b.roots())
	for _, name := range wanted {
		b.result(name, g, wanted)
	}
	// A broken container no other needs is not in the walk: it fails here.
	// One that others need fails as its step, so that they are skipped.
	for name := range broken {
		if !slices.Contains(wanted, name) {
			r := &BootResult{Name: name, Outcome: BootFailed, Reason: b.brokenError(name).Error()}
			b.results[name] = r
			opts.Progress("%s: failed: %s", name, r.Reason)
		}
	}
	outcomes := bootorder.Run(ctx, bootorder.Plan{
		Graph: g.Sub(wanted), Parallel: opts.Parallel, Step: b.start,
		Skip: func(name, reason string) { opts.Progress("%s: skipped: %s", name, reason) },
	})
	return b.finish(outcomes), nil
}

func (o BootOptions) withDefaults() BootOptions {
	if o.Parallel <= 0 {
		o.Parallel = DefaultParallel()
	}
	if o.Progress == nil {
		o.Progress = func(string, ...any) {}
	}
	return o
}

// booter carries one autostart's state between its steps.
type booter struct {
	m    *Manager
	opts BootOptions
	cfgs map[string]*config.Container
	// broken holds the containers whose configuration cannot be read, and
	// why: they are in no cfgs, and their step fails at once.
	broken map[string]error
	mu     sync.Mutex // guards results' entries, written by parallel steps
	// results holds every container autostart had to do with.
	results map[string]*BootResult
}

// roots are the containers autostart is for: those with boot.autostart,
// and those shutdown-all marked for a checkpoint.
func (b *booter) roots() []string {
	var roots []string
	for name, cfg := range b.cfgs {
		if _, marked := b.m.shutdownMarkOf(name); cfg.Boot.Autostart || marked {
			roots = append(roots, name)
		}
	}
	return roots
}

func (b *booter) result(name string, g *bootorder.Graph, wanted []string) {
	r := &BootResult{Name: name}
	if cfg := b.cfgs[name]; cfg != nil {
		r.Autostart = cfg.Boot.Autostart
	}
	for _, d := range g.Dependents(name) {
		if slices.Contains(wanted, d) {
			r.NeededBy = append(r.NeededBy, d)
		}
	}
	b.results[name] = r
}

// brokenError is why a container whose configuration cannot be read is
// not started.
func (b *booter) brokenError(name string) error {
	return fmt.Errorf("its configuration cannot be read, so lodge cannot start it or tell when it is ready: %w; fix it (lodge config edit %s) and run lodge autostart again", b.broken[name], name)
}

// start is one container's step: start it unless it runs, then wait until
// it is ready. One whose configuration cannot be read fails at once, even
// if it runs: lodge cannot tell whether it is ready.
func (b *booter) start(ctx context.Context, name string) error {
	b.mu.Lock()
	r := b.results[name]
	b.mu.Unlock()
	progress := func(format string, args ...any) { b.opts.Progress(name+": "+format, args...) }
	cfg := b.cfgs[name]
	if cfg == nil {
		err := b.brokenError(name)
		progress("failed: %v", err)
		return err
	}
	began := time.Now()
	restored, restoreErr, err := b.m.bootStart(ctx, name, progress)
	b.mu.Lock()
	r.StartedAt, r.Restored = &began, restored
	if restoreErr != nil {
		r.RestoreError = restoreErr.Error()
	}
	if errors.Is(err, ErrRunning) {
		r.AlreadyRunning, r.StartedAt, err = true, nil, nil
	}
	b.mu.Unlock()
	if err != nil {
		progress("failed: %v", err)
		return err
	}
	if err := b.m.waitReady(ctx, name, cfg); err != nil {
		progress("failed: %v", err)
		return err
	}
	ready := time.Now()
	b.mu.Lock()
	r.ReadyAt = &ready
	b.mu.Unlock()
	progress("ready (%s)", ready.Sub(began).Round(time.Millisecond))
	return nil
}

// finish fills the results in from the walk's outcomes.
func (b *booter) finish(outcomes map[string]bootorder.Outcome) []BootResult {
	var out []BootResult
	for name, r := range b.results {
		if o, ok := outcomes[name]; ok {
			switch {
			case o.Skipped != "":
				r.Outcome, r.Reason = BootSkipped, o.Skipped
			case o.Err != nil:
				r.Outcome, r.Reason = BootFailed, o.Err.Error()
			default:
				r.Outcome = BootReady
			}
		}
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b BootResult) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// bootStart starts container name (ErrRunning if it runs). If shutdown-all
// checkpointed it, it is restored, and, should that fail, booted afresh:
// restoreErr then says why the restore failed. If shutdown-all meant to
// checkpoint it but was cut short before the checkpoint was complete, it
// is booted afresh, and restoreErr says so.
func (m *Manager) bootStart(ctx context.Context, name string, progress func(string, ...any)) (restored bool, restoreErr, err error) {
	if st, err := m.liveState(name); err != nil {
		return false, nil, err
	} else if st != nil {
		m.clearShutdownCheckpoint(name)
		progress("running already")
		return false, nil, ErrRunning
	}
	mark, marked := m.shutdownMarkOf(name)
	switch {
	case !marked:
		progress("starting")
		return false, nil, m.Start(ctx, name, progress)
	case !mark.made:
		restoreErr = fmt.Errorf("lodge shutdown-all was cut short before its checkpoint %s was complete: there is nothing to restore", mark.dir)
		progress("%v; booting it afresh instead", restoreErr)
		m.clearShutdownCheckpoint(name)
		return false, restoreErr, m.Start(ctx, name, progress)
	}
	progress("restoring from the checkpoint shutdown-all made")
	err = m.Start(ctx, name, progress) // resumes: shutdown-all made a stateful stop
	if errors.Is(err, ErrRunning) {
		m.clearShutdownCheckpoint(name)
		return false, nil, err
	}
	if err == nil && m.resumePending(name) == "" {
		return true, nil, nil // the start removed the marker
	}
	if err == nil { // cannot happen: a start that resumed removed the marker
		err = errors.New("the checkpoint is still pending after the start")
	}
	// resume's advice to boot with --fresh is what happens next: left out.
	err = errors.New(strings.TrimSuffix(err.Error(), "; to boot it instead: lodge start --fresh "+name))
	progress("restoring failed (%v); booting it afresh instead", err)
	m.clearShutdownCheckpoint(name)
	return false, err, m.StartFresh(ctx, name, progress)
}

// shutdownMarker is the file by which shutdown-all tells autostart that it
// checkpointed the container: it holds the checkpoint's directory. It is
// written before the dump begins, so that a shutdown-all killed in the
// middle leaves it behind, and withdrawn if the checkpoint fails; the next
// start of the container removes it.
func (m *Manager) shutdownMarker(name string) string {
	return filepath.Join(m.store.ContainerDir(name), "shutdown-checkpoint")
}

// shutdownMark is what shutdown-all's marker says at boot.
type shutdownMark struct {
	dir string // the checkpoint shutdown-all made, or meant to make
	// made: dir is the container's pending resume, to restore. If not, the
	// dump never completed (dir does not exist): shutdown-all was cut
	// short, and the container went down with the host, unsaved.
	made bool
}

// shutdownMarkOf reads container name's marker. A marker whose checkpoint
// exists but is no longer the pending resume (it was resumed, or the
// container stopped plainly since) does not count.
func (m *Manager) shutdownMarkOf(name string) (shutdownMark, bool) {
	data, err := os.ReadFile(m.shutdownMarker(name))
	if err != nil {
		return shutdownMark{}, false
	}
	dir := strings.TrimSpace(string(data))
	switch {
	case dir == "":
		return shutdownMark{}, false
	case dir == m.resumePending(name):
		return shutdownMark{dir: dir, made: true}, true
	}
	if _, err := os.Stat(dir); err == nil {
		return shutdownMark{}, false
	}
	return shutdownMark{dir: dir}, true
}

// clearShutdownCheckpoint removes the marker. Best effort: a marker left
// behind no longer counts once its checkpoint is not the pending resume.
func (m *Manager) clearShutdownCheckpoint(name string) { os.Remove(m.shutdownMarker(name)) }

// clearShutdownCheckpointOn removes the marker once a start went through
// (the container has run since shutdown-all), and passes the start's
// error on.
func (m *Manager) clearShutdownCheckpointOn(name string, startErr error) error {
	if startErr == nil {
		m.clearShutdownCheckpoint(name)
	}
	return startErr
}
