package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"lodge/remote/client"
)

// splitRemote reads REMOTE:NAME (a container on a remote host; NAME may be
// empty, as in lodge list h2:). Container names never hold a colon.
func splitRemote(arg string) (remote, name string, ok bool) {
	return strings.Cut(arg, ":")
}

// remoteClient opens the remote named name.
func (a *app) remoteClient(name string) (*client.Client, error) {
	return a.openRemote(a.root, name)
}

func newRemoteCmd(a *app) *cobra.Command {
	return groupCmd("remote", "Other hosts this one talks to (their lodge serve)",
		`Remotes are other hosts running lodge serve. lodge remote add trusts one with a
token made there by lodge trust add; then REMOTE:NAME names a container there
(lodge list h2:, lodge info h2:web1, lodge start h2:web1, lodge stop h2:web1).`,
		newRemoteAddCmd(a), newRemoteListCmd(a), newRemoteRemoveCmd(a))
}

// groupCmd is a command that only holds subcommands.
func groupCmd(name, short, long string, subs ...*cobra.Command) *cobra.Command {
	var names []string
	for _, sub := range subs {
		names = append(names, sub.Name())
	}
	cmd := &cobra.Command{
		Use:   name + " " + strings.Join(names, "|"),
		Short: short,
		Long:  long,
		Args:  exactArgs(0, "a subcommand ("+strings.Join(names, ", ")+")"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError{fmt.Sprintf("%s needs a subcommand: %s (see --help)", cmd.CommandPath(), strings.Join(names, ", "))}
		},
	}
	cmd.AddCommand(subs...)
	return cmd
}

func newRemoteAddCmd(a *app) *cobra.Command {
	var token string
	cmd := &cobra.Command{
		Use:   "add NAME ADDR --token TOKEN",
		Short: "Trust a host running lodge serve at ADDR, with a token it made (lodge trust add)",
		Long: `Trust a host running lodge serve at ADDR (HOST:PORT; port 8443 if none) as the
remote NAME. TOKEN comes from lodge trust add on that host: it carries the host
certificate's fingerprint, checked before anything is sent, and a one-time secret
that makes the host trust a client certificate made here for it.`,
		Example: `  lodge remote add h2 10.0.0.2:8443 --token lodge1.eyJ...`,
		Args:    exactArgs(2, "a remote name and an address"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if token == "" {
				return usageError{"remote add needs --token (run lodge trust add on the remote host)"}
			}
			if _, err := a.manager(); err != nil {
				return err // root, as every command that writes ROOT
			}
			r, err := client.Add(cmd.Context(), a.root, args[0], args[1], token)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Added remote %s at %s (host certificate %s); it trusts this host as %s.\n", r.Name, r.Address, r.Fingerprint, r.TrustedAs)
			return nil
		},
	}
	cmd.Flags().StringVar(&token, "token", "", "the token lodge trust add printed on the remote host")
	return cmd
}

func newRemoteListCmd(a *app) *cobra.Command {
	return listCmd(a, "List remotes", func() ([]client.Remote, error) { return client.List(a.root) },
		func(remotes []client.Remote) error {
			tw := tabwriter.NewWriter(a.stdout, 0, 0, 3, ' ', 0)
			fmt.Fprintln(tw, "NAME\tADDRESS\tFINGERPRINT\tTRUSTED AS\tADDED")
			for _, r := range remotes {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Name, r.Address, r.Fingerprint, r.TrustedAs, r.Added.Local().Format(time.DateTime))
			}
			return tw.Flush()
		})
}

// listCmd is a list command of the lodge root's records (remotes, trust):
// fetch reads them, table prints them as a table, or --format json or yaml.
func listCmd[T any](a *app, short string, fetch func() (T, error), table func(T) error) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:     "list [--format table|json|yaml]",
		Aliases: []string{"ls"},
		Short:   short,
		Args:    exactArgs(0, "no arguments"),
		RunE: func(*cobra.Command, []string) error {
			if err := checkFormatIn(format, "table", "json", "yaml"); err != nil {
				return err
			}
			if _, err := a.manager(); err != nil {
				return err // root, as every command that reads ROOT
			}
			v, err := fetch()
			if err != nil {
				return err
			}
			switch format {
			case "json":
				return writeJSON(a.stdout, v)
			case "yaml":
				return yaml.NewEncoder(a.stdout).Encode(v)
			}
			return table(v)
		},
	}
	cmd.Flags().StringVar(&format, "format", "table", "output format: table, json or yaml")
	return cmd
}

func newRemoteRemoveCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "remove NAME",
		Aliases: []string{"rm"},
		Short:   "Forget a remote (the remote host trusts its certificate until lodge trust remove there)",
		Args:    exactArgs(1, "a remote name"),
		RunE: func(_ *cobra.Command, args []string) error {
			if _, err := a.manager(); err != nil {
				return err
			}
			return client.Remove(a.root, args[0])
		},
	}
}

// The commands that take REMOTE:NAME call these: the same manager
// operations through the remote's API, printed as the local ones.

func remoteList(ctx context.Context, a *app, arg, format string) error {
	remote, name, ok := splitRemote(arg)
	if !ok || name != "" {
		return usageError{fmt.Sprintf("list takes a remote as REMOTE: (lodge list h2:), not %q", arg)}
	}
	c, err := a.remoteClient(remote)
	if err != nil {
		return err
	}
	infos, err := c.List(ctx)
	if err != nil {
		return err
	}
	return printList(a.stdout, format, infos)
}

func remoteInfo(ctx context.Context, a *app, remote, name, format string) error {
	c, err := a.remoteClient(remote)
	if err != nil {
		return err
	}
	info, err := c.Info(ctx, name)
	if err != nil {
		return err
	}
	return printInfo(a.stdout, format, info)
}

func remoteStart(ctx context.Context, a *app, remote, name string, fresh bool) error {
	c, err := a.remoteClient(remote)
	if err != nil {
		return err
	}
	return c.Start(ctx, name, fresh, a.progress)
}

func remoteStop(ctx context.Context, a *app, remote, name string, flags stopFlags, stateful bool) error {
	if stateful {
		return usageError{"stop --stateful of a remote container is not in the host API yet"}
	}
	opts, err := flags.options()
	if err != nil {
		return err
	}
	c, err := a.remoteClient(remote)
	if err != nil {
		return err
	}
	res, err := c.Stop(ctx, name, opts)
	if err == nil && res.Killed && !opts.Force {
		fmt.Fprintf(a.stderr, "lodge: %s:%s did not shut down within its timeout and was killed\n", remote, name)
	}
	return err
}
