package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"lodge/manager"
)

func newMigrateCmd(a *app) *cobra.Command {
	var opts manager.MigrateOptions
	var format string
	cmd := &cobra.Command{
		Use:   "migrate NAME REMOTE [--live] [--format table|json]",
		Short: "Move a running container to another host (a remote) with CRIU",
		Long: `Move running container NAME to the host REMOTE (lodge remote add), stop-and-copy:
both hosts' preflights run before anything is frozen (the checkpoint preflight here;
the name, CRIU and its features, the CPU's features, the image and its layers, the
NICs' networks, the id range and disk space there); the root filesystem is sent while
the container runs; then CRIU freezes
and dumps it, the root filesystem's changes and the images are sent, and the target
restores it. Only once it runs there is it removed here. Any failure before that leaves
it running here and nothing of it on the target.

The container keeps its id range when it is free on the target; otherwise the target
gives it one of its own pool and rewrites the checkpoint's id maps (both hosts need
the same idmap.size); the progress and --format json's id_remap say so.

Progress goes to stderr; at the end it prints the downtime (from the freeze here to
running there), the total time, the bytes sent and the time of each phase. --live
asks for a shorter freeze: neither pre-copy nor post-copy is built yet, and it says
which one the two hosts would allow.

A refusal exits as other commands refused for the same reason: 4 when a process
here cannot be checkpointed or the name or the id range is taken there, 3 when a
NIC's network or the image is missing there, 6 when the target cannot take it
(its CPU lacks a feature of this one's, its CRIU or kernel lacks one the dump
uses, other idmap settings, too little disk). The container keeps running here in every case.`,
		Example: `  lodge migrate web h2
  lodge migrate web h2 --format json`,
		Args:              exactArgs(2, "a container name and a remote"),
		ValidArgsFunction: completeNames(a),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkResultFormat(format); err != nil {
				return err
			}
			name, remote := args[0], strings.TrimSuffix(args[1], ":")
			if strings.Contains(remote, ":") {
				return usageError{fmt.Sprintf("migrate takes a remote's name (h2), not %q", args[1])}
			}
			m, err := a.manager()
			if err != nil {
				return err
			}
			c, err := a.remoteClient(remote)
			if err != nil {
				return err
			}
			opts.Peer = remote
			res, err := m.Migrate(cmd.Context(), name, c.Target(), opts, a.progress)
			if done, err := jsonResult(a, format, res, len(res.Blockers), err); done {
				return err
			}
			printMigrated(a, remote, res)
			return nil
		},
	}
	cmd.Flags().BoolVar(&opts.Live, "live", false, "shorten the freeze where both hosts allow it (not built yet: says which mode they would allow)")
	cmd.Flags().StringVar(&format, "format", "table", "output format: table or json")
	return cmd
}

// printMigrated prints a migration's result: the downtime first, then each
// phase's time and bytes.
func printMigrated(a *app, remote string, res manager.MigrateResult) {
	ms := func(d time.Duration) string { return d.Round(time.Millisecond).String() }
	fmt.Fprintf(a.stdout, "Migrated %s to %s (%s): downtime %s, total %s, %s sent\n", res.Name, remote, res.Mode, ms(res.Downtime), ms(res.Total), humanBytes(res.Bytes))
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "PHASE\tTIME\tSENT")
	for _, p := range res.Phases {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", p.Name, ms(p.Time), humanBytes(p.Bytes))
	}
	tw.Flush()
	if res.LiveNote != "" {
		fmt.Fprintln(a.stdout, res.LiveNote)
	}
}
