package manager

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"lodge/config"
)

// Readiness: when a started container may have the containers that start
// after it (boot.after) started. A container is ready when its
// boot.ready_command exits 0 in it; without one, when its init says so:
// systemd once `systemctl is-system-running` says running or degraded
// (its boot is over, a unit may have failed), other inits once they run.

// readyPoll is how often readiness is asked again.
const readyPoll = 250 * time.Millisecond

// probe asks once whether a container is ready: ready, or a status to
// report if the wait times out, or an error that ends the wait (the
// container stopped, systemd gave up booting).
type probe func(ctx context.Context) (ready bool, status string, err error)

// waitReady waits, up to boot.ready_timeout, until the started container
// name is ready.
func (m *Manager) waitReady(ctx context.Context, name string, cfg *config.Container) error {
	limit := cfg.Boot.ReadyWithin()
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	ask := m.readyProbe(name, cfg)
	status := ""
	for {
		ready, s, err := ask(ctx)
		if err != nil {
			return err
		}
		if ready {
			return nil
		}
		// A probe cut short by the deadline says nothing about the
		// container: the previous answer is the one to report.
		if s != "" && ctx.Err() == nil {
			status = s
		}
		select {
		case <-ctx.Done():
			if status == "" {
				status = "no answer"
			}
			return fmt.Errorf("%s is not ready after %s (boot.ready_timeout); last: %s", name, limit, status)
		case <-time.After(readyPoll):
		}
	}
}

// readyProbe chooses how container name says it is ready.
func (m *Manager) readyProbe(name string, cfg *config.Container) probe {
	if len(cfg.Boot.ReadyCommand) > 0 {
		return m.commandProbe(name, cfg.Boot.ReadyCommand)
	}
	if m.runsSystemd(name, cfg) {
		return m.systemdProbe(name)
	}
	return m.runningProbe(name)
}

// runsSystemd tells whether the running container's init is systemd.
func (m *Manager) runsSystemd(name string, cfg *config.Container) bool {
	st, err := m.liveState(name)
	if err != nil || st == nil || len(cfg.Init.Command) == 0 {
		return false
	}
	return initIsSystemd(filepath.Join("/proc", strconv.Itoa(st.Init.PID), "root"), cfg.Init.Command[0])
}

// runningProbe: an init that is not systemd is ready once it runs.
func (m *Manager) runningProbe(name string) probe {
	return func(context.Context) (bool, string, error) {
		st, err := m.liveState(name)
		if err != nil {
			return false, "", err
		}
		if st == nil {
			return false, "", m.stoppedError(name)
		}
		return true, "", nil
	}
}

// systemdProbe asks systemd how far its boot is.
func (m *Manager) systemdProbe(name string) probe {
	return func(ctx context.Context) (bool, string, error) {
		out, code, err := m.execProbe(ctx, name, []string{"systemctl", "is-system-running"})
		if err != nil {
			return false, "", err
		}
		if code == execFailed {
			return false, out, nil
		}
		switch state := firstWord(out); state {
		case "running", "degraded":
			return true, "", nil
		case "maintenance", "stopping":
			return false, "", fmt.Errorf("systemd in %s is %s, not booting: see lodge console %s", name, state, name)
		default: // initializing, starting, or no answer yet
			return false, "systemd says " + strconv.Quote(state), nil
		}
	}
}

// commandProbe runs boot.ready_command in the container.
func (m *Manager) commandProbe(name string, command []string) probe {
	return func(ctx context.Context) (bool, string, error) {
		out, code, err := m.execProbe(ctx, name, command)
		if err != nil {
			return false, "", err
		}
		switch code {
		case 0:
			return true, "", nil
		case execFailed:
			return false, out, nil
		}
		return false, fmt.Sprintf("boot.ready_command exited %d: %s", code, strings.TrimSpace(out)), nil
	}
}

// execProbe runs a probe's command in container name and returns its
// output (both streams, the first few hundred bytes). A container still
// being set up is no error (the probe is asked again); one that stopped is.
func (m *Manager) execProbe(ctx context.Context, name string, args []string) (string, int, error) {
	var out bytes.Buffer
	code, err := m.Exec(ctx, name, ExecOptions{Args: args, Stdout: &out, Stderr: &out})
	switch {
	case err == nil:
		text := out.String()
		return text[:min(len(text), 300)], code, nil
	case errors.Is(err, ErrNotRunning):
		return "", 0, m.stoppedError(name)
	}
	// Still starting, or the wait timed out: asked again, or reported.
	return "lodge exec: " + err.Error(), execFailed, nil
}

// execFailed is execProbe's status when the command could not be run.
const execFailed = -1

func (m *Manager) stoppedError(name string) error {
	return fmt.Errorf("%s stopped while lodge waited for it to be ready: its init exited; see %s", name, filepath.Join(m.store.LogDir(name), "monitor.log"))
}

func firstWord(s string) string {
	if f := strings.Fields(s); len(f) > 0 {
		return f[0]
	}
	return ""
}
