package main

import (
	"fmt"
	"strings"
	"time"
)

// warmups are untimed rounds before the timed ones (page cache, dentries).
const warmups = 2

func startGroup() group {
	return group{Name: "start", Title: "Start and forced stop", Run: runStart}
}

// runStart times a cold start of the stopped container, then its forced
// stop, N times per runtime, alternating the runtimes.
func runStart(b *bench) (*groupResult, error) {
	start, kill := samples{}, samples{}
	res := &groupResult{Method: startMethod(b.opts.settle)}
	for _, rt := range b.runtimes {
		name := rt.Container(1)
		if err := b.ensureStopped(rt, name); err != nil {
			return res, err
		}
		res.Commands = append(res.Commands, b.commands(rt.StartCmd(name), rt.StopCmd(name, true))...)
	}
	err := timeStartStop(b, b.runtimes, start, kill)
	res.Rows = []row{
		newRow("start latency", latency, start, targetFaster2x),
		newRow("forced stop latency", latency, kill, nil),
	}
	return res, err
}

// timeStartStop times, in turns, a start of each runtime's stopped first
// container and then its forced stop, into start and kill; warm-up rounds
// first.
func timeStartStop(b *bench, rts []runtime, start, kill samples) error {
	return inTurn(b, warmups+b.opts.n, rts, func(round int, rt runtime) error {
		name := rt.Container(1)
		up, err := b.run.timed(rt.StartCmd(name))
		if err != nil {
			return err
		}
		p, err := checkRunning(rt, name)
		if err != nil {
			return err
		}
		b.sleep(b.opts.settle)
		down, err := b.run.timed(rt.StopCmd(name, true))
		if err != nil {
			return err
		}
		if err := b.waitStopped(rt, p); err != nil {
			return err
		}
		b.sleep(b.opts.settle)
		if round >= warmups {
			start.addDuration(rt.Name(), up)
			kill.addDuration(rt.Name(), down)
		}
		return nil
	})
}

func gracefulStopGroup() group {
	return group{Name: "stop", Title: "Graceful stop", Run: runGracefulStop}
}

// bootSettle is how long a container runs before a graceful stop, so that
// busybox init has finished its sysinit actions and waits for signals.
const bootSettle = 500 * time.Millisecond

func runGracefulStop(b *bench) (*groupResult, error) {
	stop := samples{}
	res := &groupResult{Method: gracefulStopMethod()}
	killed := map[string]int{}
	for _, rt := range b.runtimes {
		name := rt.Container(1)
		if err := b.ensureStopped(rt, name); err != nil {
			return res, err
		}
		res.Commands = append(res.Commands, b.commands(rt.StopCmd(name, false))...)
	}
	err := inTurn(b, b.opts.stopN, b.runtimes, func(round int, rt runtime) error {
		name := rt.Container(1)
		if _, err := b.run.timed(rt.StartCmd(name)); err != nil {
			return err
		}
		p, err := checkRunning(rt, name)
		if err != nil {
			return err
		}
		b.sleep(bootSettle)
		d, err := b.run.timed(rt.StopCmd(name, false))
		if err != nil {
			return err
		}
		if strings.Contains(b.run.stderrText(), "killed") {
			killed[rt.Name()]++
		}
		stop.addDuration(rt.Name(), d)
		return b.waitStopped(rt, p)
	})
	res.Rows = []row{newRow("graceful stop latency", latency, stop, nil)}
	for name, n := range killed {
		res.Notes = append(res.Notes, fmt.Sprintf("%s reported killing the container after its timeout in %d runs.", name, n))
	}
	return res, err
}

func startMethod(settle time.Duration) []string {
	return []string{
		"Each round, per runtime: start the stopped container (**timed**: the start command's wall time), " +
			"check untimed that its init runs (`/proc/PID/comm` is `init`), wait " + settle.String() + ", " +
			"stop it with a forced stop (**timed**), wait until its init and monitor processes have exited (untimed), wait " + settle.String() + ". " +
			fmt.Sprintf("%d untimed warm-up rounds first.", warmups),
		"Both start commands return once the container's init has been executed: `lodge start` when the monitor reports " +
			"`ready` after the close-on-exec sync socket of the init child closed; `lxc-start` (daemonized) when the monitor sends " +
			"the RUNNING state, which it sets only after the child's close-on-exec sync pipe closed on execve of init " +
			"(lxc 5.0.2 `src/lxc/start.c`: `lxc_sync_barrier_child(START_SYNC_READY_START)` then `lxc_set_state(RUNNING)`; " +
			"`lxccontainer.c: wait_on_daemonized_start`). So the two measure the same event and no extra wait is added.",
		"`lodge stop --force` asks the monitor, which kills init and everything in the container's cgroups, reaps init and answers " +
			"once its clean-up (cgroups, state) is done; `lxc-stop -k` sends SIGKILL to init through the monitor's command socket and " +
			"returns when the monitor closes that socket as the container stops.",
	}
}

func gracefulStopMethod() []string {
	return []string{
		fmt.Sprintf("Each round, per runtime: start the container (untimed), let it run %v, stop it gracefully (**timed**), ", bootSettle) +
			"wait until init and monitor have exited (untimed). " +
			"lodge sends busybox init SIGPWR, LXC's busybox template sets `lxc.signal.halt = SIGUSR1`; either way busybox init runs " +
			"its shutdown actions, sends every process SIGTERM, sleeps 1 s, sends SIGKILL and sleeps 1 s more before it exits, " +
			"so both take about 2 s and the ratio says little: this row is informational.",
	}
}
