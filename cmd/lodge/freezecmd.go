package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"lodge/manager"
)

func newFreezeCmd(a *app) *cobra.Command {
	var timeout string
	cmd := &cobra.Command{
		Use:     "freeze NAME [--timeout DURATION]",
		Aliases: []string{"pause"},
		Short:   "Stop every process of a running container (cgroup freezer) until unfreeze",
		Long: `Freeze every process of a running container through its cgroup freezer and return
once the kernel says all are frozen. A task stuck in the kernel (in D state) keeps a
container from freezing: after --timeout the container is thawed again and the error
names the tasks that did not freeze and where they wait in the kernel. It prints
how long the kernel took ("frozen in N ms": from the request to every task frozen).

A frozen container shows FROZEN in list and info. stop, restart and delete --force
thaw it first; exec refuses until unfreeze; copy and snapshot leave it frozen.`,
		Example: `  lodge freeze web1
  lodge freeze web1 --timeout 2s
  lodge unfreeze web1`,
		Args:              exactArgs(1, "a container name"),
		ValidArgsFunction: completeNames(a),
		RunE: func(cmd *cobra.Command, args []string) error {
			d := manager.DefaultFreezeTimeout
			if timeout != "" {
				var err error
				if d, err = parseTimeout(timeout); err != nil {
					return err
				}
			}
			m, err := a.manager()
			if err != nil {
				return err
			}
			ctx, stop := interruptible(cmd.Context())
			defer stop()
			res, err := m.Freeze(ctx, args[0], d)
			if err != nil {
				return err
			}
			if res.Already {
				fmt.Fprintf(a.stderr, "lodge: %s was frozen already\n", args[0])
				return nil
			}
			fmt.Fprintf(a.stdout, "frozen in %.2f ms\n", float64(res.Took.Microseconds())/1000)
			return nil
		},
	}
	cmd.Flags().StringVar(&timeout, "timeout", "", fmt.Sprintf("how long to wait for every task to freeze before thawing again, e.g. 2s (default %v)", manager.DefaultFreezeTimeout))
	return cmd
}

func newUnfreezeCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:               "unfreeze NAME",
		Aliases:           []string{"resume", "thaw"},
		Short:             "Let a frozen container's processes run again",
		Args:              exactArgs(1, "a container name"),
		ValidArgsFunction: completeNames(a),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := a.manager()
			if err != nil {
				return err
			}
			res, err := m.Unfreeze(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if res.Already {
				fmt.Fprintf(a.stderr, "lodge: %s was not frozen\n", args[0])
			}
			if res.Committed {
				fmt.Fprintf(a.stderr, "lodge: %s was held for the source of its migration; it runs here now, and that migration is committed\n", args[0])
			}
			return nil
		},
	}
}
