package main

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"lodge/manager"
)

var outputFormats = []string{"table", "json", "yaml", "csv"}

func checkFormat(format string) error {
	for _, f := range outputFormats {
		if f == format {
			return nil
		}
	}
	return usageError{fmt.Sprintf("--format %q: use one of %s", format, strings.Join(outputFormats, ", "))}
}

// checkFormatIn accepts only the formats a command can print.
func checkFormatIn(format string, allowed ...string) error {
	if slices.Contains(allowed, format) {
		return nil
	}
	last := len(allowed) - 1
	return usageError{fmt.Sprintf("--format %q: use %s or %s", format, strings.Join(allowed[:last], ", "), allowed[last])}
}

func newListCmd(a *app) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:     "list [REMOTE:] [--format table|json|yaml|csv]",
		Aliases: []string{"ls"},
		Short:   "List containers and their state (of a remote host with REMOTE:)",
		Args:    maxArgs(1, "no arguments, or a remote as REMOTE:"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(format); err != nil {
				return err
			}
			if len(args) == 1 {
				return remoteList(cmd.Context(), a, args[0], format)
			}
			m, err := a.manager()
			if err != nil {
				return err
			}
			infos, err := m.List()
			if err != nil {
				return err
			}
			return printList(a.stdout, format, infos)
		},
	}
	cmd.Flags().StringVar(&format, "format", "table", "output format: table, json, yaml or csv")
	return cmd
}

func printList(w io.Writer, format string, infos []manager.Info) error {
	switch format {
	case "json":
		return writeJSON(w, infos)
	case "yaml":
		return yaml.NewEncoder(w).Encode(infos)
	case "csv":
		return writeCSV(w, infos)
	}
	// One write for the table, not a few per cell (tabwriter writes cells
	// one by one): hundreds of containers made thousands of writes.
	out := bufio.NewWriter(w)
	tw := tabwriter.NewWriter(out, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, strings.Join(listColumns, "\t"))
	for _, info := range infos {
		fmt.Fprintln(tw, strings.Join(listRow(info), "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, info := range infos {
		if info.Error != "" {
			fmt.Fprintf(out, "\n%s: %s\n", info.Name, info.Error)
		}
	}
	return out.Flush()
}

var listColumns = []string{"NAME", "STATE", "PID", "TEMPLATE", "MEMORY", "CPU", "CPUSET", "IDMAP", "IPV4"}

func listRow(info manager.Info) []string {
	return []string{
		info.Name, string(info.State), dashIfZero(strconv.Itoa(info.PID)), dashIfEmpty(info.Template),
		dashIfEmpty(info.Limits.Memory), dashIfZero(strconv.FormatFloat(info.Limits.CPU, 'g', -1, 64)),
		dashIfEmpty(info.Limits.Cpuset), dashIfEmpty(info.IDMap), dashIfEmpty(configuredIPv4(info.NICs)),
	}
}

// configuredIPv4 lists the NICs' IPv4 addresses: those given while the
// container runs, else the static ones, or "dhcp".
func configuredIPv4(nics []manager.NICInfo) string {
	var out []string
	for _, n := range nics {
		switch {
		case n.Type == "none":
		case n.Address4 != "":
			out = append(out, n.Address4)
		default:
			out = append(out, orDHCP(n.IPv4))
		}
	}
	return strings.Join(out, ",")
}

func writeCSV(w io.Writer, infos []manager.Info) error {
	cw := csv.NewWriter(w)
	cw.Write(listColumns)
	for _, info := range infos {
		cw.Write(listRow(info))
	}
	cw.Flush()
	return cw.Error()
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func dashIfEmpty(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func dashIfZero(s string) string {
	if s == "0" {
		return "-"
	}
	return s
}

func newInfoCmd(a *app) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:               "info [REMOTE:]NAME [--format table|json|yaml]",
		Short:             "Show a container's state, limits, id range and cgroups",
		Args:              exactArgs(1, "a container name"),
		ValidArgsFunction: completeNames(a),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormatIn(format, "table", "json", "yaml"); err != nil {
				return err
			}
			if remote, name, ok := splitRemote(args[0]); ok {
				return remoteInfo(cmd.Context(), a, remote, name, format)
			}
			m, err := a.manager()
			if err != nil {
				return err
			}
			info, err := m.Info(args[0])
			if err != nil {
				return err
			}
			return printInfo(a.stdout, format, info)
		},
	}
	cmd.Flags().StringVar(&format, "format", "table", "output format: table, json or yaml")
	return cmd
}

func printInfo(w io.Writer, format string, info manager.Info) error {
	switch format {
	case "json":
		return writeJSON(w, info)
	case "yaml":
		return yaml.NewEncoder(w).Encode(info)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("Name", info.Name)
	row("State", string(info.State))
	if info.Error != "" {
		row("Error", info.Error)
	}
	if info.Migration != "" {
		row("Migration", info.Migration)
	}
	row("PID", dashIfZero(strconv.Itoa(info.PID)))
	row("Monitor", monitorText(info))
	row("Template", dashIfEmpty(info.Template))
	row("Created", info.Created.Local().Format("2006-01-02 15:04:05"))
	if info.StartedAt != nil {
		row("Started", info.StartedAt.Local().Format("2006-01-02 15:04:05"))
	}
	row("ID map", dashIfEmpty(info.IDMap)+" (container 0-65535)")
	row("Root filesystem", info.Rootfs+rootfsModeText(info.RootfsMode))
	row("Memory limit", dashIfEmpty(info.Limits.Memory))
	row("CPU quota", dashIfZero(strconv.FormatFloat(info.Limits.CPU, 'g', -1, 64)))
	row("CPU set", dashIfEmpty(info.Limits.Cpuset))
	row("Pids limit", dashIfZero(strconv.FormatInt(info.Limits.Pids, 10)))
	row("Disk limit", dashIfEmpty(info.Limits.Disk))
	row("Network limits", fmt.Sprintf("ingress %s, egress %s", dashIfEmpty(info.Limits.NetIngress), dashIfEmpty(info.Limits.NetEgress)))
	if s := info.Storage; s != nil {
		storageRows(row, s)
	}
	for _, c := range info.Checkpoints {
		resume := ""
		if c.Resume {
			resume = ", resumed by the next start"
		}
		row("Checkpoint "+c.Name, fmt.Sprintf("%s, %s%s", c.Created.Local().Format("2006-01-02 15:04:05"), humanBytes(c.Bytes), resume))
	}
	nicRows(row, info.NICs)
	for _, p := range info.Proxies {
		name, spec, _ := strings.Cut(p, " ")
		row("Port forward "+name, spec)
	}
	for _, k := range slices.Sorted(maps.Keys(info.Cgroups)) {
		row("Cgroup "+k, info.Cgroups[k])
	}
	return tw.Flush()
}

func monitorText(info manager.Info) string {
	switch info.Monitor {
	case "running":
		return fmt.Sprintf("running (pid %d)", info.MonitorPID)
	case "gone":
		return "gone: the container runs on; stop works, the console returns after a restart"
	}
	return "-"
}

func rootfsModeText(mode string) string {
	if mode == "" {
		return ""
	}
	return " (" + mode + ")"
}

// storageRows shows the backend, the disk usage and the snapshots.
func storageRows(row func(k, v string), s *manager.StorageInfo) {
	backend := dashIfEmpty(s.Backend)
	if s.Source != "" {
		backend += " (clone of " + s.Source + ")"
	}
	row("Storage", backend)
	row("Disk usage", humanBytes(s.DiskBytes))
	if s.Error != "" {
		row("Storage error", s.Error)
	}
	if len(s.Snapshots) == 0 {
		row("Snapshots", "-")
	}
	for _, snap := range s.Snapshots {
		row("Snapshot "+snap.Name, fmt.Sprintf("%s, %s", snap.Created.Local().Format("2006-01-02 15:04:05"), humanBytes(snap.Bytes)))
	}
}

// nicRows shows the configured NICs and, while the container runs, what
// they were given.
func nicRows(row func(k, v string), nics []manager.NICInfo) {
	for _, n := range nics {
		where := n.Network
		if n.Type == "macvlan" {
			where = "macvlan on " + n.Parent
		}
		v := fmt.Sprintf("%s, %s, ipv4 %s", n.Type, dashIfEmpty(where), orDHCP(n.IPv4))
		if n.Type == "none" {
			v = "none (no interface)"
		} else if n.IPv6 != "" {
			v += ", ipv6 " + n.IPv6
		}
		if n.MTU != 0 {
			v += fmt.Sprintf(", mtu %d", n.MTU)
		}
		if n.HWAddr != "" && n.Type != "none" {
			v += ", hwaddr " + n.HWAddr
		}
		if n.Address4 != "" || n.Address6 != "" {
			v += "; now " + strings.Join(nonEmpty(n.Address4, n.Address6), " ")
		}
		if n.HostIf != "" {
			v += " (host end " + n.HostIf + ")"
		}
		row("NIC "+n.Name, v)
	}
}

func orDHCP(s string) string {
	if s == "" {
		return "dhcp"
	}
	return s
}

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}
