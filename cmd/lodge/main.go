// lodge's processes are short-lived or mostly idle: the runtime need not read
// the cgroup CPU limit at start-up (/proc/self/cgroup, mountinfo, cpu.max) to
// size GOMAXPROCS, nor track it afterwards.

//go:debug containermaxprocs=0
//go:debug updatemaxprocs=0

// Command lodge manages persistent, unprivileged system containers that boot
// their own init. See README.md for the commands and docs/architecture.md for
// how it works.
package main

import (
	"fmt"
	"os"

	"lodge/internal/fds"
)

func main() {
	// Nothing the caller left open crosses into the processes lodge starts
	// (the monitor, exec'd commands): see internal/fds. The monitor and the
	// container's first process are lodge-monitor (manager/monitor), which
	// does the same.
	if err := fds.CloseOnExecFrom(3); err != nil {
		fmt.Fprintln(os.Stderr, "lodge:", err)
		os.Exit(1)
	}
	os.Exit(run(os.Args[1:], newApp()))
}
