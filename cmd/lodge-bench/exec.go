package main

import (
	"fmt"
	"os/exec"
)

func execGroup() group {
	return group{Name: "exec", Title: "Exec", Run: runExec}
}

// execSubject is one command the group times: `true` in a container or on
// the host (the floor that process creation alone costs), or a tool that
// only starts up and prints its version.
type execSubject struct {
	name  string // "lodge", "LXC", "host"
	argv  []string
	times samples // where its samples go
}

// runExec times `true` run in the running container by each runtime, and on
// the host, N times each in rotating order.
func runExec(b *bench) (*groupResult, error) {
	res := &groupResult{Method: execMethod()}
	truePath, err := exec.LookPath("true")
	if err != nil {
		return res, err
	}
	times, startup := samples{}, samples{}
	subjects := []execSubject{}
	for _, rt := range b.runtimes {
		name := rt.Container(1)
		if err := b.ensureStopped(rt, name); err != nil {
			return res, err
		}
		if _, err := b.run.timed(rt.StartCmd(name)); err != nil {
			return res, err
		}
		if _, err := checkRunning(rt, name); err != nil {
			return res, err
		}
		subjects = append(subjects, execSubject{rt.Name(), rt.ExecCmd(name, "true"), times})
	}
	subjects = append(subjects, execSubject{"host", []string{truePath}, times})
	for _, rt := range b.runtimes {
		subjects = append(subjects, execSubject{rt.Name(), rt.VersionCmd(), startup})
	}
	for _, s := range subjects {
		res.Commands = append(res.Commands, b.commands(s.argv)...)
	}
	b.sleep(bootSettle)
	err = inTurn(b, warmups+b.opts.n, subjects, func(round int, s execSubject) error {
		d, err := b.run.timed(s.argv)
		if err == nil && round >= warmups {
			s.times.addDuration(s.name, d)
		}
		return err
	})
	for _, rt := range b.runtimes {
		if stopErr := b.ensureStopped(rt, rt.Container(1)); err == nil {
			err = stopErr
		}
	}
	res.Rows = []row{
		newRow("exec latency (`true`)", latency, times, targetFaster2x),
		newRow("tool start-up only (`lodge version`, `lxc-attach --version`)", latency, startup, nil),
	}
	res.Notes = execNotes(times, startup)
	return res, err
}

// execNotes puts the exec times in relation to the floor and to the tools'
// own start-up.
func execNotes(times, startup samples) []string {
	floor := summarize(times["host"])
	if floor.N == 0 {
		return nil
	}
	notes := []string{fmt.Sprintf("Host `true` (floor): median %.2f ms, p90 %.2f ms.", floor.Median, floor.P90)}
	lodge, lxc := summarize(times["lodge"]), summarize(times["LXC"])
	if lodge.N > 0 && lxc.N > 0 {
		notes = append(notes, fmt.Sprintf("Above the floor: lodge %.2f ms, LXC %.2f ms (%.2fx).",
			lodge.Median-floor.Median, lxc.Median-floor.Median, (lxc.Median-floor.Median)/(lodge.Median-floor.Median)))
	}
	lodgeUp, lxcUp := summarize(startup["lodge"]), summarize(startup["LXC"])
	if lodge.N > 0 && lxc.N > 0 && lodgeUp.N > 0 && lxcUp.N > 0 {
		notes = append(notes, fmt.Sprintf("exec minus the tool's bare start-up (medians): lodge %.2f ms, LXC %.2f ms: "+
			"the rest is finding the container, entering its namespaces and cgroups, and running `true` there.",
			lodge.Median-lodgeUp.Median, lxc.Median-lxcUp.Median))
	}
	return notes
}

func execMethod() []string {
	return []string{
		"Both containers run (started untimed, then left " + bootSettle.String() + " to boot). Each round runs, in rotating order, " +
			"`true` in the lodge container, in the LXC container and directly on the host (the floor: fork, exec and wait " +
			"of a process from this Go program), and the two tools with nothing to do (`lodge version`, `lxc-attach --version`: " +
			"how much of an exec is the tool's own start-up: loading, dynamic linking, runtime initialisation), each **timed** " +
			fmt.Sprintf("as the command's wall time. %d untimed warm-up rounds first.", warmups),
		"No pty is involved: stdin is /dev/null, so neither tool allocates one. `lxc-attach` passes the caller's open file " +
			"descriptors into the container; the benchmark's children have only fds 0-2 open (os/exec sets close-on-exec on the rest).",
	}
}
