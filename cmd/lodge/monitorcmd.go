package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"lodge/internal/events"
)

// monitorOptions are lodge monitor's flags.
type monitorOptions struct {
	format string
	types  []string
	since  time.Duration
}

func newMonitorCmd(a *app) *cobra.Command {
	var opts monitorOptions
	cmd := &cobra.Command{
		Use:   "monitor [REMOTE:][NAME...] [--format table|json] [--type T,...] [--since DURATION]",
		Short: "Stream the host's container events (created, started, stopped, oom, ...) as they happen",
		Long: `Print each lifecycle event of this host's containers as it happens, whoever
caused it: another shell's lodge, lodge serve, or the container itself (an init
that exits, an OOM kill). It runs until interrupted (Ctrl-C).

Names limit it to those containers; REMOTE: (or REMOTE:NAME) follows another host's
events through its lodge serve. --since shows the events of that recent past first
(as far back as the log goes; it keeps the last 4 to 8 MiB of events).

Types: ` + strings.Join(events.TypeNames(), ", ") + `. A stopped event says why
(reason: requested, killed, exited with exit_status, signaled with signal, reboot,
checkpoint, migrated). See docs/monitoring.md, "Events".`,
		Example: `  lodge monitor
  lodge monitor web1 db --type stopped,oom
  lodge monitor --format json --since 10m
  lodge monitor h2:`,
		ValidArgsFunction: completeNames(a),
		RunE: func(cmd *cobra.Command, args []string) error {
			filter, remote, err := parseMonitorArgs(args, opts)
			if err != nil {
				return err
			}
			ctx, stop := interruptible(cmd.Context())
			defer stop()
			err = a.followEvents(ctx, remote, opts, filter)
			if errors.Is(err, context.Canceled) && ctx.Err() != nil {
				return nil // interrupted: the way it ends
			}
			return err
		},
	}
	cmd.Flags().StringVar(&opts.format, "format", "table", "output format: table (one line per event) or json (one object per line)")
	cmd.Flags().StringSliceVar(&opts.types, "type", nil, "only events of these types (comma-separated)")
	cmd.Flags().DurationVar(&opts.since, "since", 0, "first show the events of this recent past, e.g. 10m")
	return cmd
}

// parseMonitorArgs reads the names (all local, or all on one remote) and
// the flags into a filter.
func parseMonitorArgs(args []string, opts monitorOptions) (events.Filter, string, error) {
	var filter events.Filter
	if err := checkFormatIn(opts.format, "table", "json"); err != nil {
		return filter, "", err
	}
	if opts.since < 0 {
		return filter, "", usageError{"--since takes a duration into the past, e.g. 10m"}
	}
	types, err := events.ParseTypes(opts.types)
	if err != nil {
		return filter, "", usageError{err.Error()}
	}
	filter.Types = types
	remote := ""
	for i, arg := range args {
		host, name, isRemote := splitRemote(arg)
		if !isRemote {
			host, name = "", arg
		}
		if i > 0 && host != remote {
			return filter, "", usageError{"lodge monitor follows one host at a time: give names of this host, or REMOTE:NAME of one remote"}
		}
		remote = host
		if name != "" {
			filter.Containers = append(filter.Containers, name)
		}
	}
	return filter, remote, nil
}

// followEvents prints the events of this host, or of remote, until ctx ends.
func (a *app) followEvents(ctx context.Context, remote string, opts monitorOptions, filter events.Filter) error {
	var since time.Time
	if opts.since > 0 {
		since = time.Now().Add(-opts.since)
	}
	show := func(e events.Event) error {
		if !filter.Match(e) {
			return nil
		}
		line := e.String()
		if opts.format == "json" {
			data, err := json.Marshal(e)
			if err != nil {
				return err
			}
			line = string(data)
		}
		_, err := fmt.Fprintln(a.stdout, line)
		return err
	}
	if remote != "" {
		c, err := a.remoteClient(remote)
		if err != nil {
			return err
		}
		return c.Events(ctx, since, filter, show)
	}
	m, err := a.manager()
	if err != nil {
		return err
	}
	return m.Events().Follow(ctx, since, show)
}
