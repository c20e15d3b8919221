package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"lodge/manager"
)

// checkResultFormat accepts the formats of commands that print one result.
func checkResultFormat(format string) error {
	return checkFormatIn(format, "table", "json")
}

// frozenMS is the frozen time in whole milliseconds, as printed.
func frozenMS(f manager.Frozen) int64 { return f.For.Milliseconds() }

func newCopyCmd(a *app) *cobra.Command {
	var snapshot bool
	var format string
	cmd := &cobra.Command{
		Use:     "copy SRC DST [--snapshot]",
		Aliases: []string{"clone"},
		Short:   "Copy a container or one of its snapshots (SRC is NAME or NAME/SNAP) to a new container",
		Long: `Copy a container, stopped or running, or a snapshot of it (NAME/SNAP), to a new
container DST. The copy gets its own name, hostname, machine-id and id range, and the
source's configuration. A running source is frozen only while its tree is cut, and
the time it was frozen is printed ("frozen for N ms"). --snapshot makes a
copy-on-write clone that shares unchanged data with the source, where the storage
backend can; without it the copy is full and independent, with progress.

DST as REMOTE:NEW copies a stopped container, with its snapshots, to another host
(lodge remote add) as container NEW there (NAME if NEW is empty): it gets its own id
range and MACs there, and is left stopped. A running container is refused (stop it,
or move it running with lodge migrate). Any failure leaves the source untouched and
nothing of the copy on the other host. SRC as REMOTE:NAME copies the other way: the
remote sends it here, through this host's lodge serve, to the remote it has for this
host (lodge remote add there).`,
		Example: `  lodge copy web1 web2
  lodge copy web1 web2 --snapshot
  lodge copy web1/before-upgrade web1-old
  lodge copy web1 h2:web1 --format json
  lodge copy h2:web1 web1-from-h2`,
		Args:              exactArgs(2, "a source (NAME or NAME/SNAP) and a new container name"),
		ValidArgsFunction: completeNames(a),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkResultFormat(format); err != nil {
				return err
			}
			_, _, fromRemote := splitRemote(args[0])
			_, _, toRemote := splitRemote(args[1])
			if fromRemote || toRemote {
				if snapshot {
					return usageError{"copy --snapshot makes a clone on this host; a copy between hosts is always full"}
				}
				if fromRemote && toRemote {
					return usageError{"copy goes between this host and one remote: one of SRC and DST is REMOTE:NAME, not both"}
				}
				return remoteCopy(cmd.Context(), a, args[0], args[1], format)
			}
			m, err := a.manager()
			if err != nil {
				return err
			}
			ctx, stop := interruptible(cmd.Context())
			defer stop()
			res, err := m.Copy(ctx, args[0], args[1], manager.CopyOptions{Snapshot: snapshot, Report: a.reporter()})
			if err != nil {
				return err
			}
			if format == "json" {
				return writeJSON(a.stdout, map[string]any{
					"name": args[1], "source": args[0], "backend": res.Backend,
					"copy_on_write": snapshot, "frozen": res.Frozen.Frozen, "frozen_ms": frozenMS(res.Frozen),
				})
			}
			if res.Frozen.Frozen {
				fmt.Fprintf(a.stdout, "frozen for %d ms\n", frozenMS(res.Frozen))
			}
			fmt.Fprintf(a.stdout, "Copied %s to %s (%s storage).\n", args[0], args[1], res.Backend)
			return nil
		},
	}
	cmd.Flags().BoolVar(&snapshot, "snapshot", false, "copy-on-write clone sharing unchanged data with the source")
	cmd.Flags().StringVar(&format, "format", "table", "output format: table or json")
	return cmd
}

func newSnapshotCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "snapshot create|list|restore|delete",
		Short: "Take, list, restore and delete snapshots of a container",
		Long: `A snapshot records a container's root filesystem and configuration. Any
snapshot can be restored, in any order: the others, newer ones included, stay.
Snapshots of a running container are consistent (it is frozen for the cut).`,
		Args: exactArgs(0, "a subcommand: create, list, restore or delete"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError{fmt.Sprintf("%s needs a subcommand: create, list, restore or delete (see --help)", cmd.CommandPath())}
		},
	}
	cmd.AddCommand(newSnapshotCreateCmd(a), newSnapshotListCmd(a), newSnapshotRestoreCmd(a), newSnapshotDeleteCmd(a))
	return cmd
}

func newSnapshotCreateCmd(a *app) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "create NAME [SNAP]",
		Short: "Snapshot a container (SNAP defaults to snap0, snap1, ...)",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return usageError{fmt.Sprintf("%s needs a container name and optionally a snapshot name (usage: %s)", cmd.CommandPath(), cmd.UseLine())}
			}
			return nil
		},
		ValidArgsFunction: completeNames(a),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkResultFormat(format); err != nil {
				return err
			}
			snap := ""
			if len(args) == 2 {
				snap = args[1]
			}
			m, err := a.manager()
			if err != nil {
				return err
			}
			ctx, stop := interruptible(cmd.Context())
			defer stop()
			res, err := m.SnapshotCreate(ctx, args[0], snap)
			if err != nil {
				return err
			}
			if format == "json" {
				return writeJSON(a.stdout, map[string]any{
					"name": args[0], "snapshot": res.Name, "frozen": res.Frozen.Frozen, "frozen_ms": frozenMS(res.Frozen),
				})
			}
			if res.Frozen.Frozen {
				fmt.Fprintf(a.stdout, "frozen for %d ms\n", frozenMS(res.Frozen))
			}
			fmt.Fprintf(a.stdout, "Created snapshot %s of %s.\n", res.Name, args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "table", "output format: table or json")
	return cmd
}

func newSnapshotListCmd(a *app) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:               "list NAME [--format table|json|yaml]",
		Aliases:           []string{"ls"},
		Short:             "List a container's snapshots, oldest first, with their sizes",
		Args:              exactArgs(1, "a container name"),
		ValidArgsFunction: completeNames(a),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormatIn(format, "table", "json", "yaml"); err != nil {
				return err
			}
			m, err := a.manager()
			if err != nil {
				return err
			}
			snaps, err := m.Snapshots(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printSnapshots(a.stdout, format, snaps)
		},
	}
	cmd.Flags().StringVar(&format, "format", "table", "output format: table, json or yaml")
	return cmd
}

func printSnapshots(w io.Writer, format string, snaps []manager.SnapshotInfo) error {
	switch format {
	case "json":
		return writeJSON(w, snaps)
	case "yaml":
		return yaml.NewEncoder(w).Encode(snaps)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tCREATED\tSIZE")
	for _, s := range snaps {
		size := humanBytes(s.Bytes)
		if s.Error != "" {
			size = "? (" + s.Error + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Name, s.Created.Local().Format("2006-01-02 15:04:05"), size)
	}
	return tw.Flush()
}

func newSnapshotRestoreCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:               "restore NAME SNAP",
		Short:             "Bring a stopped container's files and configuration back to a snapshot (all snapshots stay)",
		Args:              exactArgs(2, "a container name and a snapshot name"),
		ValidArgsFunction: completeNames(a),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := a.manager()
			if err != nil {
				return err
			}
			ctx, stop := interruptible(cmd.Context())
			defer stop()
			if err := m.SnapshotRestore(ctx, args[0], args[1]); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Restored %s from snapshot %s.\n", args[0], args[1])
			return nil
		},
	}
}

func newSnapshotDeleteCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:               "delete NAME SNAP",
		Aliases:           []string{"rm"},
		Short:             "Delete a snapshot",
		Args:              exactArgs(2, "a container name and a snapshot name"),
		ValidArgsFunction: completeNames(a),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := a.manager()
			if err != nil {
				return err
			}
			return m.SnapshotDelete(cmd.Context(), args[0], args[1])
		},
	}
}

// humanBytes shows a byte count in binary units, one decimal.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for v := n / unit; v >= unit; v /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
