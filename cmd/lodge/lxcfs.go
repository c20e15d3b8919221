package main

import (
	"fmt"
	"os"
	"syscall"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"lodge/internal/helper"
	"lodge/lxcfs"
)

func newLXCFSCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lxcfs",
		Short: "The /proc and /sys views server (like lxcfs)",
		Long: `Containers see their own /proc/meminfo, cpuinfo, stat, uptime, loadavg, swaps,
diskstats and /sys/devices/system/cpu, rendered from their cgroups by one FUSE server
per lodge root. lodge start runs it on demand, under a supervisor that restarts it if
it dies; a restarted server re-attaches the views of running containers. To run it
under a service manager instead, use "lodge lxcfs serve" (for example in a systemd
unit with Restart=always).`,
	}
	cmd.AddCommand(newLXCFSServeCmd(a), newLXCFSStopCmd(a), newLXCFSRestartCmd(a), newLXCFSStatusCmd(a))
	return cmd
}

func newLXCFSServeCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the server in the foreground until SIGTERM (SIGHUP: exit 75 to be restarted)",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(*cobra.Command, []string) error {
			if _, err := a.manager(); err != nil {
				return err
			}
			self, err := os.Executable()
			if err != nil {
				return err
			}
			server, err := helper.FindBeside(self, lxcfs.ServerName)
			if err != nil {
				return err
			}
			// The server is its own binary (FUSE stays out of lodge's
			// start-up); it takes this process's place.
			return syscall.Exec(server, []string{server, a.root}, os.Environ())
		},
	}
}

func newLXCFSStopCmd(a *app) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "stop [--force]",
		Short: "Stop the server; refused while running containers use it, unless --force",
		Long: `Stop the server and its supervisor. Running containers keep running, but their
views fail ("Transport endpoint is not connected") until a server runs again (the next
lodge start or lodge lxcfs serve re-attaches them), so this is refused while running
containers use the views; --force stops it anyway. To upgrade the server without
breaking anything, use lodge lxcfs restart.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(*cobra.Command, []string) error {
			m, err := a.manager()
			if err != nil {
				return err
			}
			return m.StopViews(force)
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "stop even while running containers use the views")
	return cmd
}

func newLXCFSRestartCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "restart",
		Short: "Restart the server from the binary on disk (after an upgrade); views stay up",
		Long: `Restart the server from the lodge binary now on disk, for example after an
upgrade. The new server mounts afresh and re-attaches the views of every running
container; reads in between fail for a fraction of a second, and no container restarts.
Starts the server if it is not running.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(*cobra.Command, []string) error {
			m, err := a.manager()
			if err != nil {
				return err
			}
			pid, err := m.RestartViews()
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "The views server runs as pid %d.\n", pid)
			return nil
		},
	}
}

func newLXCFSStatusCmd(a *app) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "status [--format table|json|yaml]",
		Short: "Show whether the server runs, its pids and mount point",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(*cobra.Command, []string) error {
			m, err := a.manager()
			if err != nil {
				return err
			}
			s := m.ViewsStatus()
			switch format {
			case "json":
				return writeJSON(a.stdout, s)
			case "yaml":
				return yaml.NewEncoder(a.stdout).Encode(s)
			case "table":
				fmt.Fprintf(a.stdout, "Running:     %v\nServer PID:  %s\nSupervisor:  %s\nMount point: %s\nLog:         %s\n",
					s.Running, dashIfZero(fmt.Sprint(s.ServerPID)), dashIfZero(fmt.Sprint(s.SupervisorPID)), s.MountPoint, s.Log)
				return nil
			}
			return usageError{fmt.Sprintf("--format %q: use table, json or yaml", format)}
		},
	}
	cmd.Flags().StringVar(&format, "format", "table", "output format: table, json or yaml")
	return cmd
}
