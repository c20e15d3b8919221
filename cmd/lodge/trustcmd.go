package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"lodge/remote/server"
	"lodge/remote/trust"
)

func newTrustCmd(a *app) *cobra.Command {
	return groupCmd("trust", "The clients this host's lodge serve trusts, and tokens to add one", "",
		newTrustAddCmd(a), newTrustListCmd(a), newTrustRemoveCmd(a))
}

func newTrustAddCmd(a *app) *cobra.Command {
	var name, expiry string
	cmd := &cobra.Command{
		Use:   "add [--name NAME] [--expiry DURATION]",
		Short: "Print a one-time token for lodge remote add on another host",
		Long: `Print a one-time token for lodge remote add on another host. It carries this
host certificate's fingerprint (the other host checks it before sending anything),
a random secret (this host keeps only its hash) and its expiry. Redeemed once, it
makes this host trust the other's client certificate as NAME (default: that
host's name).`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(*cobra.Command, []string) error {
			ttl, err := parseTimeout(expiry)
			if err != nil {
				return usageError{fmt.Sprintf("--expiry %q: use a positive duration like 10m or 1h", expiry)}
			}
			if _, err := a.manager(); err != nil {
				return err
			}
			cert, err := server.HostCert(a.root)
			if err != nil {
				return err
			}
			tok, err := trust.Open(a.root).AddToken(name, ttl, cert.Fingerprint)
			if err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, tok.Encode())
			fmt.Fprintf(a.stderr, "One-time token, valid until %s; on the other host: lodge remote add NAME ADDR --token TOKEN\n", tok.Expires.Local().Format(time.DateTime))
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "name to trust the client as (default: the name it proposes, its hostname)")
	cmd.Flags().StringVar(&expiry, "expiry", "1h", "how long the token is valid, e.g. 10m or 24h")
	return cmd
}

func newTrustListCmd(a *app) *cobra.Command {
	return listCmd(a, "List trusted clients and pending tokens", func() (trust.Listing, error) { return trust.Open(a.root).List() },
		func(l trust.Listing) error { return printTrust(a, l) })
}

func printTrust(a *app, l trust.Listing) error {
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tFINGERPRINT\tADDED")
	for _, c := range l.Clients {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Name, c.Fingerprint, c.Added.Local().Format(time.DateTime))
	}
	for _, t := range l.Tokens {
		fmt.Fprintf(tw, "%s\t(pending token)\texpires %s\n", dashIfEmpty(t.Name), t.Expires.Local().Format(time.DateTime))
	}
	return tw.Flush()
}

func newTrustRemoveCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "remove NAME",
		Aliases: []string{"rm"},
		Short:   "Stop trusting a client (at once, even while lodge serve runs), or revoke a pending token",
		Args:    exactArgs(1, "a client name"),
		RunE: func(_ *cobra.Command, args []string) error {
			if _, err := a.manager(); err != nil {
				return err
			}
			return trust.Open(a.root).Remove(args[0])
		},
	}
}
