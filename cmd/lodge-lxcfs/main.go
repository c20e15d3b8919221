// Command lodge-lxcfs is lodge's /proc and /sys views server for one lodge
// root (see docs/lxcfs.md): lodge-lxcfs ROOT. lodge starts it on demand
// under lodge-helper's supervisor; `lodge lxcfs serve` runs it in the
// foreground for a service manager. It is a binary of its own so that the
// FUSE library stays out of the start-up of every lodge command.
//
// It exits 0 on SIGTERM or SIGINT (or when another server already serves
// the root), 75 on SIGHUP (to be started again, from the binary on disk),
// and 1 on failure.
package main

import (
	"errors"
	"fmt"
	"os"

	"lodge/lxcfs"
	"lodge/lxcfs/server"
)

func main() {
	if len(os.Args) != 2 || os.Args[1] == "" || os.Args[1][0] != '/' {
		fmt.Fprintln(os.Stderr, "usage: lodge-lxcfs ROOT (an absolute lodge root; see lodge lxcfs --help)")
		os.Exit(2)
	}
	err := server.ServeMain(os.Args[1])
	if errors.Is(err, server.ErrRestart) {
		os.Exit(lxcfs.RestartExitCode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "lodge-lxcfs:", err)
		os.Exit(1)
	}
}
