package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"lodge/manager"
)

func newNetworkCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "network create|list|show|delete",
		Short: "Create, list, show and delete managed networks (a bridge per network)",
		Long: `A managed network is a bridge on the host with the gateway's addresses (.1 of its
IPv4 subnet, ::1 of its IPv6 one) and an nftables table that lets each container send
only from its own MAC and addresses. Containers join one with network.N.* keys (see
lodge config --help); the default network is created the first time a container
names it. A container's NICs are attached when it starts (or is restored) and
released when it stops.`,
		Args: exactArgs(0, "a subcommand: create, list, show or delete"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError{fmt.Sprintf("%s needs a subcommand: create, list, show or delete (see --help)", cmd.CommandPath())}
		},
	}
	cmd.AddCommand(newNetworkCreateCmd(a), newNetworkListCmd(a), newNetworkShowCmd(a), newNetworkDeleteCmd(a))
	return cmd
}

func newNetworkCreateCmd(a *app) *cobra.Command {
	var opts manager.NetworkOptions
	var format string
	cmd := &cobra.Command{
		Use:   "create NAME [--subnet 10.x.y.0/24] [--ipv6 fd..::/64|auto] [--nat]",
		Short: "Create a network and bring its bridge up",
		Long: `Create a network and bring its bridge up. Without --subnet, a /24 of 10.0.0.0/8
that no route or address of the host and no other lodge network uses is picked; a
given one that overlaps them is refused, naming what it overlaps. --ipv6 auto picks a
unique local /64. --nat masquerades the IPv4 subnet's traffic leaving by any other
interface (the host also needs net.ipv4.ip_forward=1, which lodge does not set).`,
		Example: `  lodge network create web
  lodge network create web --subnet 10.12.34.0/24 --ipv6 auto`,
		Args: exactArgs(1, "a network name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkResultFormat(format); err != nil {
				return err
			}
			m, err := a.manager()
			if err != nil {
				return err
			}
			info, err := m.CreateNetwork(cmd.Context(), args[0], opts)
			if err != nil {
				return err
			}
			if format == "json" {
				return writeJSON(a.stdout, info)
			}
			v6 := ""
			if info.IPv6 != "" {
				v6 = " and " + info.IPv6
			}
			fmt.Fprintf(a.stdout, "Created network %s: bridge %s on %s%s (gateway %s).\n", info.Name, info.Bridge, info.IPv4, v6, info.Gateway4)
			for _, w := range info.Warnings {
				fmt.Fprintf(a.stderr, "warning: %s\n", w)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&opts.Subnet, "subnet", "", "IPv4 subnet, e.g. 10.12.34.0/24 (default: a free /24 of 10.0.0.0/8)")
	cmd.Flags().StringVar(&opts.IPv6, "ipv6", "", "IPv6 /64, e.g. fd12:3456:789a::/64, or auto (default: none)")
	cmd.Flags().BoolVar(&opts.NAT, "nat", false, "masquerade the network's IPv4 traffic to the outside")
	cmd.Flags().StringVar(&format, "format", "table", "output format: table or json")
	return cmd
}

func newNetworkListCmd(a *app) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:     "list [--format table|json]",
		Aliases: []string{"ls"},
		Short:   "List the managed networks",
		Args:    exactArgs(0, "no arguments"),
		RunE: func(*cobra.Command, []string) error {
			if err := checkResultFormat(format); err != nil {
				return err
			}
			m, err := a.manager()
			if err != nil {
				return err
			}
			nets, err := m.Networks()
			if err != nil {
				return err
			}
			if format == "json" {
				return writeJSON(a.stdout, nets)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 0, 3, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSTATE\tBRIDGE\tIPV4\tIPV6\tNAT\tUSED BY")
			for _, n := range nets {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%t\t%s\n", n.Name, n.State, n.Bridge, n.IPv4, dashIfEmpty(n.IPv6), n.NAT, dashIfEmpty(strings.Join(n.UsedBy, ",")))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&format, "format", "table", "output format: table or json")
	return cmd
}

func newNetworkShowCmd(a *app) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "show NAME [--format table|json]",
		Short: "Show a network, with the host's FORWARD drops that would eat its traffic as warnings",
		Args:  exactArgs(1, "a network name"),
		RunE: func(_ *cobra.Command, args []string) error {
			if err := checkResultFormat(format); err != nil {
				return err
			}
			m, err := a.manager()
			if err != nil {
				return err
			}
			info, err := m.Network(args[0])
			if err != nil {
				return err
			}
			if format == "json" {
				return writeJSON(a.stdout, info)
			}
			return printNetwork(a.stdout, info)
		},
	}
	cmd.Flags().StringVar(&format, "format", "table", "output format: table or json")
	return cmd
}

func printNetwork(w io.Writer, n manager.NetworkInfo) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("Name", n.Name)
	row("State", n.State)
	row("Bridge", n.Bridge)
	row("nftables table", "bridge "+n.Table)
	row("IPv4", n.IPv4+" (gateway "+n.Gateway4+")")
	if n.IPv6 != "" {
		row("IPv6", n.IPv6+" (gateway "+n.Gateway6+")")
	} else {
		row("IPv6", "-")
	}
	row("NAT", fmt.Sprint(n.NAT))
	row("Created", n.Created.Local().Format("2006-01-02 15:04:05"))
	row("Used by", dashIfEmpty(strings.Join(n.UsedBy, ", ")))
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, warning := range n.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warning)
	}
	return nil
}

func newNetworkDeleteCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "delete NAME",
		Aliases: []string{"rm"},
		Short:   "Delete a network that no container's configuration names",
		Args:    exactArgs(1, "a network name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := a.manager()
			if err != nil {
				return err
			}
			if err := m.DeleteNetwork(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Deleted network %s.\n", args[0])
			return nil
		},
	}
}
