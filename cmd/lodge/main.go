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
	"runtime"

	"lodge/internal/fds"
	"lodge/manager"
)

// The monitor replaces itself with lodge-helper's watcher (execve, see
// manager/monitor/idle.go) from the main goroutine. Locked to the main
// thread, that exec needs no leader swap: when another thread execs, the
// kernel leaves the old leader a zombie for a moment, and /proc/PID/stat
// then says the monitor is dead (lodge list, lodge-bench saw it).
func init() { runtime.LockOSThread() }

func main() {
	// Nothing the caller left open crosses into the processes lodge starts
	// (the monitor, the container's init, exec'd commands): see internal/fds.
	// Descriptors handed over on purpose (the monitor's status pipe, the init
	// sync socket, the watcher's hand-over) are read by this process itself.
	if err := fds.CloseOnExecFrom(3); err != nil {
		fmt.Fprintln(os.Stderr, "lodge:", err)
		os.Exit(1)
	}
	// Internal re-executions of this binary, dispatched before any CLI set-up:
	// the per-container monitor and the container's first process.
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "__monitor":
			os.Exit(manager.MonitorMain(os.Args[2:]))
		case "__init":
			manager.InitMain()
		}
	}
	os.Exit(run(os.Args[1:], newApp()))
}
