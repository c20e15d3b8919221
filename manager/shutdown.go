package manager

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"lodge/config"
	"lodge/internal/atomicfile"
	"lodge/internal/bootorder"
	"lodge/internal/store"
)

// Host shutdown: every running container stopped, those that others name
// in boot.after after those others, all at once as far as that order
// allows, within one budget. A container gets its stop signal and its own
// init.stop_timeout, cut short by what is left of the budget; it is killed
// only if it is still running then (it ignored its signal, or its shutdown
// outlasted its timeout). boot.host_shutdown = "checkpoint" checkpoints it
// instead (a stateful stop), for autostart to restore.
//
// The bound: ShutdownAll returns at most ShutdownGrace after the budget.
// The grace is for the kills at the budget's end and the clean-up after
// them (the monitor waits for a container's processes to die, then
// removes its cgroups and network), and for a checkpoint begun in time
// that is still being written; a container whose stop is not done by then
// is reported failed ("it may still run"), and whatever runs it (systemd)
// kills what is left.

// ShutdownGrace is how long ShutdownAll waits, after its budget, for the
// kills and clean-ups still under way: it returns by budget + grace.
const ShutdownGrace = 10 * time.Second

// MinCheckpointLeft is the least of the budget that must be left to begin
// a checkpoint: a dump cannot be cut short safely once begun, and one of a
// container of some hundreds of MiB takes seconds. With less left the
// container is stopped cleanly instead.
const MinCheckpointLeft = 10 * time.Second

// Shutdown outcomes of one container.
const (
	ShutdownStopped      = "stopped"      // its init exited on its stop signal
	ShutdownKilled       = "killed"       // still running at its timeout, or at the budget's end
	ShutdownCheckpointed = "checkpointed" // saved (boot.host_shutdown = "checkpoint") and stopped
	ShutdownFailed       = "failed"       // lodge could not stop it, or not in time; it may still run
)

// ShutdownResult is what shutdown-all did with one container.
type ShutdownResult struct {
	Name    string `json:"name"`
	Outcome string `json:"outcome"`
	// Checkpoint is the checkpoint made, which autostart restores.
	Checkpoint string `json:"checkpoint,omitempty"`
	// CheckpointError: the checkpoint failed, or was not begun (too little
	// of the budget was left), and the container was stopped instead
	// (Outcome says how).
	CheckpointError string    `json:"checkpoint_error,omitempty"`
	StoppingAt      time.Time `json:"stopping_at"` // when its stop (or checkpoint) began
	StoppedAt       time.Time `json:"stopped_at"`
	Reason          string    `json:"reason,omitempty"` // failed or killed: why
}

// ShutdownAll stops every running container within timeout, and returns
// by timeout + ShutdownGrace at the latest; see above. opts.Parallel caps
// how many stop at once (0: no cap: a stop waits, it takes no CPU, and a
// container waiting for a slot would lose its time to stop cleanly). It
// returns one result per container that ran, sorted by name.
func (m *Manager) ShutdownAll(ctx context.Context, timeout time.Duration, opts BootOptions) ([]ShutdownResult, error) {
	deadline := time.Now().Add(timeout)
	ctx, cancel := context.WithDeadline(ctx, deadline.Add(ShutdownGrace))
	defer cancel()
	running, err := m.runningNames()
	if err != nil {
		return nil, err
	}
	if opts.Parallel <= 0 {
		opts.Parallel = max(1, len(running))
	}
	opts = opts.withDefaults()
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
	s := &stopper{m: m, opts: opts, cfgs: cfgs, deadline: deadline, results: map[string]ShutdownResult{}}
	outcomes := bootorder.Run(ctx, bootorder.Plan{Graph: g, Reverse: true, KeepGoing: true, Parallel: opts.Parallel, Step: s.step})
	var out []ShutdownResult
	for _, name := range running {
		r, ok := s.result(name)
		if !ok { // its turn never came
			r = ShutdownResult{Name: name, Outcome: ShutdownFailed, Reason: notReached(ctx, outcomes[name])}
			opts.Progress("%s: not stopped: %s", name, r.Reason)
		}
		out = append(out, r)
	}
	return out, nil
}

// notReached says why a container's turn never came.
func notReached(ctx context.Context, o bootorder.Outcome) string {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Sprintf("its turn (once those that start after it had stopped) had not come when the budget and its %s grace ran out; it still runs", ShutdownGrace)
	}
	return o.Skipped
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

// stopper carries one shutdown-all's state between its steps.
type stopper struct {
	m        *Manager
	opts     BootOptions
	cfgs     map[string]*config.Container
	deadline time.Time // the budget's end
	mu       sync.Mutex
	results  map[string]ShutdownResult // guarded by mu: the steps run in parallel
}

func (s *stopper) result(name string) (ShutdownResult, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.results[name]
	return r, ok
}

// step is one container's turn: its stop, given up on (reported failed)
// when ctx ends, at the budget's end plus the grace. The stop goes on
// meanwhile, but nobody waits for it.
func (s *stopper) step(ctx context.Context, name string) error {
	began := time.Now()
	done := make(chan ShutdownResult, 1)
	go func() { done <- s.stop(ctx, name, began) }()
	var r ShutdownResult
	select {
	case r = <-done:
	case <-ctx.Done():
		r = ShutdownResult{Name: name, Outcome: ShutdownFailed, StoppingAt: began, StoppedAt: time.Now(),
			Reason: fmt.Sprintf("its stop (or checkpoint) was not done when the budget and its %s grace ran out (%v); it may still run", ShutdownGrace, ctx.Err())}
		s.opts.Progress("%s: failed: %s", name, r.Reason)
	}
	s.mu.Lock()
	s.results[name] = r
	s.mu.Unlock()
	if r.Outcome == ShutdownFailed {
		return errors.New(r.Reason)
	}
	return nil
}

// stop checkpoints container name if so configured and enough of the
// budget is left, else (or if that fails) stops it.
func (s *stopper) stop(ctx context.Context, name string, began time.Time) ShutdownResult {
	r := ShutdownResult{Name: name, StoppingAt: began}
	progress := func(format string, args ...any) { s.opts.Progress(name+": "+format, args...) }
	cfg := s.cfgs[name]
	if cfg != nil && cfg.Boot.CheckpointAtShutdown() {
		dir, err := s.checkpoint(ctx, name, progress)
		if err == nil {
			r.Outcome, r.Checkpoint, r.StoppedAt = ShutdownCheckpointed, dir, time.Now()
			progress("checkpointed in %s; lodge autostart restores it", dir)
			return r
		}
		r.CheckpointError = err.Error()
	}
	opts, why := s.stopOptions(cfg)
	progress("stopping")
	res, err := s.m.Stop(ctx, name, opts)
	r.StoppedAt = time.Now()
	switch {
	case errors.Is(err, ErrNotRunning):
		r.Outcome = ShutdownStopped // it stopped by itself meanwhile
	case err != nil:
		r.Outcome, r.Reason = ShutdownFailed, err.Error()
		progress("failed: %v", err)
	case res.Killed:
		r.Outcome, r.Reason = ShutdownKilled, why
		progress("killed: %s", why)
	default:
		r.Outcome = ShutdownStopped
		progress("stopped (%s)", r.StoppedAt.Sub(r.StoppingAt).Round(time.Millisecond))
	}
	return r
}

// checkpoint makes the container's checkpoint for autostart, unless too
// little of the budget is left to begin one.
func (s *stopper) checkpoint(ctx context.Context, name string, progress func(string, ...any)) (string, error) {
	left := time.Until(s.deadline)
	var err error
	switch {
	case left <= 0:
		err = errors.New("the shutdown's budget was spent before its turn")
	case left < MinCheckpointLeft:
		err = fmt.Errorf("only %s of the shutdown's budget was left, too little to begin a checkpoint (lodge needs %s)", left.Round(time.Millisecond), MinCheckpointLeft)
	default:
		var dir string
		if dir, err = s.m.checkpointForBoot(ctx, name, progress); err == nil {
			return dir, nil
		}
		progress("checkpoint failed (%v); stopping it cleanly instead", err)
		return "", err
	}
	progress("not checkpointed: %v; stopping it cleanly instead", err)
	return "", err
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
