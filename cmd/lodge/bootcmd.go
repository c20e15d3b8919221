package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"lodge/manager"
)

// lodge autostart and lodge shutdown-all: what the host's boot and shutdown
// run (lodge's systemd unit calls them; docs/operations.md).

func newAutostartCmd(a *app) *cobra.Command {
	var parallel int
	var format string
	cmd := &cobra.Command{
		Use:   "autostart [--parallel N] [--format table|json]",
		Short: "Start every boot.autostart container, in boot.after order (run at host boot)",
		Long: `Start every container with boot.autostart = true that does not run, and the
containers they name in boot.after (even if those are not autostart), and restore those
that lodge shutdown-all checkpointed (boot.host_shutdown = "checkpoint"; a restore
that fails boots the container afresh, and says so).

A container starts once every container it names in boot.after is ready: its
boot.ready_command exits 0 in it, or else its init says so (systemd: systemctl
is-system-running says running or degraded; other inits: once started), within
boot.ready_timeout. Containers that do not wait for each other start at the same time,
up to --parallel at once. A container that fails (its start, its init, its readiness)
holds up only those that wait for it: they are skipped, and say why.

Progress lines go to stderr as things happen; the summary (start and ready times,
what failed or was skipped and why) to stdout. The exit status is 1 if any container
failed or was skipped.`,
		Example: `  lodge autostart
  lodge autostart --parallel 8 --format json`,
		Args: maxArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkResultFormat(format); err != nil {
				return err
			}
			if parallel < 0 {
				return usageError{"--parallel: use a positive number (0: the default)"}
			}
			m, err := a.manager()
			if err != nil {
				return err
			}
			results, err := m.Autostart(cmd.Context(), manager.BootOptions{Parallel: parallel, Progress: a.syncProgress()})
			if err != nil {
				return err
			}
			if err := printBootResults(a.stdout, format, results); err != nil {
				return err
			}
			return bootFailures(results)
		},
	}
	cmd.Flags().IntVar(&parallel, "parallel", 0, fmt.Sprintf("start at most N containers at once (default: twice the CPUs, at least 4; here %d)", manager.DefaultParallel()))
	cmd.Flags().StringVar(&format, "format", "table", "output format: table or json")
	return cmd
}

func newShutdownAllCmd(a *app) *cobra.Command {
	var parallel int
	var timeout, format string
	cmd := &cobra.Command{
		Use:   "shutdown-all [--timeout DURATION] [--parallel N] [--format table|json]",
		Short: "Stop every running container, dependents first, within one budget (run at host shutdown)",
		Long: fmt.Sprintf(`Stop every running container: a container that others name in boot.after stops
only after they have stopped; containers that do not wait for each other stop at the
same time (--parallel caps how many). All of it within one budget, --timeout: each
container gets its stop signal and its init.stop_timeout, cut short by what is left of
the budget, and is killed only if it still runs then (it ignored its signal, or its
shutdown outlasted its time). The summary says which were killed.

The command returns at most %s after the budget (a grace for the last kills and
clean-ups): a container whose stop is not done by then is reported failed (it may
still run). So whatever runs it must allow --timeout + %s, and a little more for
lodge itself (lodge's systemd unit: --timeout 60, TimeoutStopSec=80).

A container with boot.host_shutdown = "checkpoint" is checkpointed instead (CRIU; a
stateful stop), and the next lodge autostart restores it. A checkpoint is begun only
with at least %s of the budget left. If the checkpoint fails or is not begun, the
container is stopped cleanly instead, and the summary says so.

The exit status is 1 if lodge could not stop a container.`, manager.ShutdownGrace, manager.ShutdownGrace, manager.MinCheckpointLeft),
		Example: `  lodge shutdown-all --timeout 60
  lodge shutdown-all --timeout 2m --format json`,
		Args: maxArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkResultFormat(format); err != nil {
				return err
			}
			budget, err := parseTimeout(timeout)
			if err != nil {
				return err
			}
			if parallel < 0 {
				return usageError{"--parallel: use a positive number (0: the default)"}
			}
			m, err := a.manager()
			if err != nil {
				return err
			}
			results, err := m.ShutdownAll(cmd.Context(), budget, manager.BootOptions{Parallel: parallel, Progress: a.syncProgress()})
			if err != nil {
				return err
			}
			if err := printShutdownResults(a.stdout, format, results); err != nil {
				return err
			}
			return shutdownFailures(results)
		},
	}
	cmd.Flags().StringVar(&timeout, "timeout", "60", "the budget for the whole shutdown, e.g. 60 (seconds), 90s or 2m")
	cmd.Flags().IntVar(&parallel, "parallel", 0, "stop at most N containers at once (default: no cap, every container whose turn has come)")
	cmd.Flags().StringVar(&format, "format", "table", "output format: table or json")
	return cmd
}

// syncProgress is a.progress safe to call from several goroutines at once.
func (a *app) syncProgress() func(string, ...any) {
	var mu sync.Mutex
	return func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		a.progress(format, args...)
	}
}

func printBootResults(w io.Writer, format string, results []manager.BootResult) error {
	return printSummary(w, format, results, "No container to start: none has boot.autostart = true.",
		"NAME\tOUTCOME\tSTARTED\tREADY\tNOTE", func(r manager.BootResult) []string {
			return []string{r.Name, string(r.Outcome), clock(r.StartedAt), clock(r.ReadyAt), bootNote(r)}
		})
}

// printSummary writes autostart's or shutdown-all's results: a JSON list
// (empty, not null, when there are none), or a table of header's columns
// with a row per result, or none when there are none.
func printSummary[T any](w io.Writer, format string, results []T, none, header string, row func(T) []string) error {
	if format == "json" {
		if results == nil {
			results = []T{}
		}
		return writeJSON(w, results)
	}
	if len(results) == 0 {
		_, err := fmt.Fprintln(w, none)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range results {
		fmt.Fprintln(tw, strings.Join(row(r), "\t"))
	}
	return tw.Flush()
}

// bootNote is the NOTE column: why it failed or was skipped, else how it started.
func bootNote(r manager.BootResult) string {
	var notes []string
	switch {
	case r.Reason != "":
		notes = append(notes, r.Reason)
	case r.AlreadyRunning:
		notes = append(notes, "was running")
	case r.Restored:
		notes = append(notes, "restored from its shutdown checkpoint")
	}
	if r.RestoreError != "" {
		notes = append(notes, "restore failed, booted afresh: "+r.RestoreError)
	}
	if !r.Autostart && len(r.NeededBy) > 0 {
		notes = append(notes, "needed by "+strings.Join(r.NeededBy, ", "))
	}
	return strings.Join(notes, "; ")
}

func clock(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Local().Format("15:04:05.000")
}

// bootFailures is the command's error when a container failed or was skipped.
func bootFailures(results []manager.BootResult) error {
	var failed, skipped []string
	for _, r := range results {
		switch r.Outcome {
		case manager.BootFailed:
			failed = append(failed, r.Name)
		case manager.BootSkipped:
			skipped = append(skipped, r.Name)
		}
	}
	if len(failed)+len(skipped) == 0 {
		return nil
	}
	return fmt.Errorf("autostart: %d failed (%s), %d skipped (%s); see above, and lodge start NAME to retry one",
		len(failed), dashIfEmpty(strings.Join(failed, ", ")), len(skipped), dashIfEmpty(strings.Join(skipped, ", ")))
}

func printShutdownResults(w io.Writer, format string, results []manager.ShutdownResult) error {
	return printSummary(w, format, results, "No container runs.",
		"NAME\tOUTCOME\tSTOPPING\tSTOPPED\tNOTE", func(r manager.ShutdownResult) []string {
			note := r.Reason
			if r.CheckpointError != "" {
				note = strings.TrimPrefix(note+"; ", "; ") + "checkpoint failed, stopped instead: " + r.CheckpointError
			}
			if r.Checkpoint != "" {
				note = "autostart restores " + r.Checkpoint
			}
			return []string{r.Name, string(r.Outcome), clock(&r.StoppingAt), clock(&r.StoppedAt), note}
		})
}

func shutdownFailures(results []manager.ShutdownResult) error {
	var failed []string
	for _, r := range results {
		if r.Outcome == manager.ShutdownFailed {
			failed = append(failed, r.Name)
		}
	}
	if len(failed) == 0 {
		return nil
	}
	return fmt.Errorf("shutdown-all: could not stop %s; see above (lodge stop --force NAME kills one)", strings.Join(failed, ", "))
}
