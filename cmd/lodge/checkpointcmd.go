package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"lodge/manager"
)

func newCheckpointCmd(a *app) *cobra.Command {
	var opts manager.CheckpointOptions
	var format string
	cmd := &cobra.Command{
		Use:   "checkpoint NAME [--stop] [--dir DIR] [--check]",
		Short: "Save a running container's processes to disk with CRIU",
		Long: `Checkpoint a running container: its processes, their memory, files, sockets and
namespaces are written to a checkpoint directory by CRIU (4.2 or newer; make deps
installs one). The container keeps running; with --stop it is stopped once the
checkpoint is complete (lodge restore brings it back).

A preflight runs first and refuses, before anything is frozen, a container with
something CRIU cannot save (an io_uring instance, an unsupported socket or device, a
nested namespace CRIU refuses, a lodge exec session outside the container), naming
the process; the container then keeps running untouched. --check runs only the
preflight.

Checkpoints live in ROOT/containers/NAME/checkpoints/ unless --dir says otherwise.`,
		Example: `  lodge checkpoint web --check
  lodge checkpoint web`,
		Args:              exactArgs(1, "a container name"),
		ValidArgsFunction: completeNames(a),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkResultFormat(format); err != nil {
				return err
			}
			m, err := a.manager()
			if err != nil {
				return err
			}
			res, err := m.Checkpoint(cmd.Context(), args[0], opts)
			if done, err := jsonResult(a, format, res, len(res.Blockers), err); done {
				return err
			}
			switch {
			case res.Stopped:
				fmt.Fprintf(a.stdout, "Checkpointed %s in %d ms (%s) and stopped it: %s\n", res.Name, res.Millis, humanBytes(res.Bytes), res.Dir)
			case opts.Check:
				fmt.Fprintf(a.stdout, "%s can be checkpointed (%s).\n", res.Name, res.CRIU)
			default:
				fmt.Fprintf(a.stdout, "Checkpointed %s in %d ms (%s); it keeps running: %s\n", res.Name, res.Millis, humanBytes(res.Bytes), res.Dir)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&opts.Stop, "stop", false, "stop the container once the checkpoint is complete")
	cmd.Flags().StringVar(&opts.Dir, "dir", "", "directory for the checkpoint (default: under the container)")
	cmd.Flags().BoolVar(&opts.Check, "check", false, "only run the preflight: say what would block a checkpoint")
	cmd.Flags().StringVar(&format, "format", "table", "output format: table or json")
	return cmd
}

func newRestoreCmd(a *app) *cobra.Command {
	var opts manager.RestoreOptions
	cmd := &cobra.Command{
		Use:   "restore NAME [--dir DIR]",
		Short: "Bring a stopped container back from a checkpoint",
		Long: `Restore a stopped container from its newest checkpoint (or --dir DIR): its
processes continue where the checkpoint left them, with the same pids inside, open
files and sockets. The container gets its cgroups, views and console again and is
watched by a new monitor as after a start. Its NICs are made again on the same
networks with the same MACs and addresses (a restore is refused, saying what differs,
when its configuration or its network would now give it others), and its port
forwards and bandwidth limits are applied. A restore that fails leaves nothing
running and keeps the checkpoint.`,
		Example:           `  lodge restore web`,
		Args:              exactArgs(1, "a container name"),
		ValidArgsFunction: completeNames(a),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := a.manager()
			if err != nil {
				return err
			}
			dir, err := m.Restore(cmd.Context(), args[0], opts, a.progress)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Restored %s from %s.\n", args[0], dir)
			return nil
		},
	}
	cmd.Flags().StringVar(&opts.Dir, "dir", "", "the checkpoint directory (default: the container's newest)")
	return cmd
}

// jsonResult prints res as JSON with --format json, also for a refusal
// that named blockers (the preflight's), and says whether that or err
// ends the command.
func jsonResult(a *app, format string, res any, blockers int, err error) (bool, error) {
	if format == "json" && (err == nil || blockers > 0) {
		if werr := writeJSON(a.stdout, res); werr != nil {
			return true, werr
		}
		return true, err
	}
	return err != nil, err
}
