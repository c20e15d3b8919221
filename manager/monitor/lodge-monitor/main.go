// Command lodge-monitor is a container's monitor (`lodge-monitor __monitor
// ROOT NAME`) and the container's first process (`lodge-monitor __init`),
// both started by lodge, never by hand.
//
// It is a binary of its own, next to lodge and lodge-helper, because every
// container start runs it twice and on some machines a process's start-up is
// paid page by page: this binary leaves out the CLI (cobra, templates, image
// tooling, output formats), is a quarter smaller than lodge, runs a third
// fewer package initialisers, and starts about 2.4 ms sooner on the machine of
// docs/benchmarks.md. It lives under manager/monitor because it is the
// monitor's: nothing outside manager imports manager's packages.
package main

import (
	"fmt"
	"os"
	"runtime"

	"lodge/internal/fds"
	"lodge/manager/monitor"
)

// The monitor replaces itself with lodge-helper's watcher (execve, see
// manager/monitor/idle.go) from the main goroutine. Locked to the main
// thread, that exec needs no leader swap: when another thread execs, the
// kernel leaves the old leader a zombie for a moment, and /proc/PID/stat
// then says the monitor is dead (lodge list, lodge-bench saw it).
func init() { runtime.LockOSThread() }

func main() {
	// Nothing lodge's caller left open crosses into the container: see
	// internal/fds. Descriptors handed over on purpose (the status pipe, the
	// init sync socket, the watcher's hand-over) are read by this process.
	if err := fds.CloseOnExecFrom(3); err != nil {
		fmt.Fprintln(os.Stderr, "lodge-monitor:", err)
		os.Exit(1)
	}
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "__monitor":
			os.Exit(monitor.Main(os.Args[2:]))
		case "__init":
			monitor.InitMain() // never returns
		case "__hold":
			monitor.Hold() // never returns
		}
	}
	fmt.Fprintln(os.Stderr, "lodge-monitor is started by lodge, not by hand")
	os.Exit(2)
}
