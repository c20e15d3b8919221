package main

import (
	"github.com/spf13/cobra"
)

func newConsoleCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "console NAME",
		Short: "Attach to a running container's console (detach with Ctrl-a q)",
		Long: `Attach to a running container's /dev/console. The last lines it printed (usually a
login prompt) are shown first. Type Ctrl-a q to detach, Ctrl-a Ctrl-a to send Ctrl-a.`,
		Args:              exactArgs(1, "a container name"),
		ValidArgsFunction: completeNames(a),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := a.manager()
			if err != nil {
				return err
			}
			return m.Console(cmd.Context(), args[0], a.stdin, a.stdout)
		},
	}
}
