package main

import (
	"os"

	"github.com/spf13/cobra"

	"lodge/internal/store"
)

func newRootCmd(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "lodge",
		Short: "Persistent, unprivileged system containers that boot their own init",
		Long: `lodge creates and runs full-OS containers: each boots its own init (systemd,
sysvinit, busybox init) in user-namespaced, unprivileged namespaces, with its own
id range, cgroup limits and console.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	defaultRoot := store.DefaultRoot
	if env := os.Getenv("LODGE_ROOT"); env != "" {
		defaultRoot = env
	}
	root.PersistentFlags().StringVar(&a.root, "root", defaultRoot, "directory holding lodge's containers and state (env LODGE_ROOT)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return flagError{err} })
	root.AddCommand(
		newCreateCmd(a), newStartCmd(a), newStopCmd(a), newRestartCmd(a), newDeleteCmd(a),
		newListCmd(a), newInfoCmd(a), newExecCmd(a), newConsoleCmd(a), newConfigCmd(a),
		newImageCmd(a), newLXCFSCmd(a), newVersionCmd(a), newCopyCmd(a), newSnapshotCmd(a), newNetworkCmd(a),
		newFreezeCmd(a), newUnfreezeCmd(a), newCheckpointCmd(a), newRestoreCmd(a),
		newServeCmd(a), newTrustCmd(a), newRemoteCmd(a), newMigrateCmd(a), newTopCmd(a), newMonitorCmd(a),
		newAutostartCmd(a), newShutdownAllCmd(a),
	)
	return root
}

// completeNames completes container names for commands that take one.
func completeNames(a *app) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		st := store.Store{Root: a.root}
		names, _ := st.Names()
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}
