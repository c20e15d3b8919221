package manager

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"lodge/config"
	"lodge/internal/atomicfile"
	"lodge/internal/bootorder"
	"lodge/internal/store"
)

// Host shutdown: every running container stopped, those that others name
// in boot.after after those others, as many at once as that order allows,
// all within one budget. A container gets its stop signal and its own
// init.stop_timeout, cut short by what is left of the budget; it is killed
// only if it is still running then (it ignored its signal, or its shutdown
// outlasted its timeout). boot.host_shutdown = "checkpoint" checkpoints it
// instead (a stateful stop), for autostart to restore.

// DefaultShutdownParallel is how many containers shutdown-all stops at
// once: a stop is mostly waiting for init, and every container waiting for
// a free slot eats into the one budget, so more than for starts.
func DefaultShutdownParallel() int { return max(16, 8*runtime.NumCPU()) }

// Shutdown outcomes of one container.
const (
	ShutdownStopped      = "stopped"      // its init exited on its stop signal
	ShutdownKilled       = "killed"       // still running at its timeout, or at the budget's end
	ShutdownCheckpointed = "checkpointed" // saved (boot.host_shutdown = "checkpoint") and stopped
	ShutdownFailed       = "failed"       // lodge could not stop it; it may still run
)

// ShutdownResult is what shutdown-all did with one container.
type ShutdownResult struct {
	Name    string `json:"name"`
	Outcome string `json:"outcome"`
	// Checkpoint is the checkpoint made, which autostart restores.
	Checkpoint string `json:"checkpoint,omitempty"`
	// CheckpointError: the checkpoint failed, and the container was
	// stopped instead (Outcome says how).
	CheckpointError string    `json:"checkpoint_error,omitempty"`
	StoppingAt      time.Time `json:"stopping_at"` // when its stop (or checkpoint) began
	StoppedAt       time.Time `json:"stopped_at"`
	Reason          string    `json:"reason,omitempty"` // failed or killed: why
}

// ShutdownAll stops every running container within timeout; see above.
// It returns one result per container that ran, sorted by name.
func (m *Manager) ShutdownAll(ctx context.Context, timeout time.Duration, opts BootOptions) ([]ShutdownResult, error) {
	if opts.Parallel <= 0 {
		opts.Parallel = DefaultShutdownParallel()
	}
	opts = opts.withDefaults()
	deadline := time.Now().Add(timeout)
	running, err := m.runningNames()
	if err != nil {
		return nil, err
	}
	cfgs, broken, err := m.bootConfigs()
	if err != nil {
		return nil, err
	}
	g := graphOf(cfgs, broken, nil).Sub(running)
	if c := g.Cycle(); c != nil {
		// Every container stops at shutdown: a cycle (the lists were edited
		// by hand, say) only loses the order.
		opts.Progress("warning: boot.after has a cycle, %s: stopping all at once, in no order", bootorder.FormatCycle(c))
		g = bootorder.New(noEdges(running))
	}
	s := &stopper{m: m, opts: opts, cfgs: cfgs, deadline: deadline, results: map[string]*ShutdownResult{}}
	for _, name := range running {
		s.results[name] = &ShutdownResult{Name: name}
	}
	outcomes := bootorder.Run(ctx, bootorder.Plan{Graph: g, Reverse: true, KeepGoing: true, Parallel: opts.Parallel, Step: s.stop})
	var out []ShutdownResult
	for _, name := range running {
		r := s.results[name]
		if o := outcomes[name]; o.Err != nil || o.Skipped != "" {
			r.Outcome, r.Reason = ShutdownFailed, o.Skipped
			if o.Err != nil {
				r.Reason = o.Err.Error()
			}
		}
		out = append(out, *r)
	}
	return out, nil
}

// runningNames lists the containers that run (or are frozen, starting or
// stopping), sorted.
func (m *Manager) runningNames() ([]string, error) {
	infos, err := m.List()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, info := range infos {
		if info.State != store.Stopped {
			names = append(names, info.Name)
		}
	}
	return names, nil
}

func noEdges(names []string) map[string][]string {
	after := map[string][]string{}
	for _, n := range names {
		after[n] = nil
	}
	return after
}

// stopper carries one shutdown-all's state between its steps. Each step
// writes only its own container's result.
type stopper struct {
	m        *Manager
	opts     BootOptions
	cfgs     map[string]*config.Container
	deadline time.Time
	results  map[string]*ShutdownResult
}

// stop is one container's step: checkpoint it if so configured, else (or
// if that fails) stop it.
func (s *stopper) stop(ctx context.Context, name string) error {
	r := s.results[name]
	r.StoppingAt = time.Now()
	progress := func(format string, args ...any) { s.opts.Progress(name+": "+format, args...) }
	cfg := s.cfgs[name]
	if cfg != nil && cfg.Boot.CheckpointAtShutdown() && time.Now().After(s.deadline) {
		r.CheckpointError = "the shutdown's budget was spent before its turn"
	} else if cfg != nil && cfg.Boot.CheckpointAtShutdown() {
		dir, err := s.m.checkpointForBoot(ctx, name, progress)
		if err == nil {
			r.Outcome, r.Checkpoint, r.StoppedAt = ShutdownCheckpointed, dir, time.Now()
			progress("checkpointed in %s; lodge autostart restores it", dir)
			return nil
		}
		r.CheckpointError = err.Error()
		progress("checkpoint failed (%v); stopping it cleanly instead", err)
	}
	opts, why := s.stopOptions(cfg)
	progress("stopping")
	res, err := s.m.Stop(ctx, name, opts)
	r.StoppedAt = time.Now()
	switch {
	case errors.Is(err, ErrNotRunning):
		r.Outcome = ShutdownStopped // it stopped by itself meanwhile
	case err != nil:
		progress("failed: %v", err)
		return err
	case res.Killed:
		r.Outcome, r.Reason = ShutdownKilled, why
		progress("killed: %s", why)
	default:
		r.Outcome = ShutdownStopped
		progress("stopped (%s)", r.StoppedAt.Sub(r.StoppingAt).Round(time.Millisecond))
	}
	return nil
}

// stopOptions gives the container its own init.stop_timeout, cut short by
// what is left of the budget (none left: killed at once), and says why it
// would be killed.
func (s *stopper) stopOptions(cfg *config.Container) (StopOptions, string) {
	own := config.Default().Init.StopTimeout.Std()
	if cfg != nil {
		own = cfg.Init.StopTimeout.Std()
	}
	left := time.Until(s.deadline)
	switch {
	case left <= 0:
		return StopOptions{Force: true}, "the shutdown's budget was spent before its turn"
	case left < own:
		return StopOptions{Timeout: left}, fmt.Sprintf("still running when the shutdown's budget ran out (%s left for it)", left.Round(time.Millisecond))
	}
	return StopOptions{Timeout: own}, fmt.Sprintf("still running %s (init.stop_timeout) after its stop signal", own)
}

// checkpointForBoot makes a stateful stop of container name and marks it
// for autostart to restore. The mark is written before the dump, so that a
// shutdown-all killed once the dump is done (the container down, its
// resume pending) still has autostart restore it; a checkpoint that fails
// withdraws it. A failed checkpoint leaves the container running (CRIU's
// guarantee), to be stopped instead.
func (m *Manager) checkpointForBoot(ctx context.Context, name string, progress func(string, ...any)) (string, error) {
	dir := m.newCheckpointDir(name)
	if err := atomicfile.Write(m.shutdownMarker(name), []byte(dir+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("mark it for lodge autostart: %w", err)
	}
	_, err := m.Checkpoint(ctx, name, CheckpointOptions{Stop: true, Resume: true, Dir: dir})
	if err != nil && m.resumePending(name) == dir {
		// CRIU failed after the checkpoint was complete and the tree
		// killed: the stateful stop stands, and autostart restores it.
		progress("warning: %v; it is down with its checkpoint complete, which lodge autostart restores", err)
		return dir, nil
	}
	if err != nil {
		m.clearShutdownCheckpoint(name)
		return "", err
	}
	return dir, nil
}
