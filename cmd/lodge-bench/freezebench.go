package main

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

func freezeGroup() group {
	return group{Name: "freeze", Title: "Freeze", Run: runFreeze}
}

// targetFreeze is the aim for a freeze: under 10 ms (LXC here:
// about 1 s).
var targetFreeze = &target{Text: "< 10 ms", MaxLodge: 10}

// freezeLoop counts as fast as it can in the background, writing each
// value to /tmp/c (read from the host through init's root) with the
// shell's builtin echo: no fork, so the loop keeps a CPU busy in user space
// and system calls, the case where a freezer must interrupt a running task.
const freezeLoop = `i=0; while :; do i=$((i+1)); echo $i > /tmp/c; done`

// runFreeze times a freeze and an unfreeze of each runtime's running first
// container, busy with a counting loop, in turns; each freeze is checked
// (the counter stands still) untimed.
func runFreeze(b *bench) (*groupResult, error) {
	freeze, thaw, kernel, startup := samples{}, samples{}, samples{}, samples{}
	res := &groupResult{Method: freezeMethod(b.opts.settle)}
	var rts []runtime
	inits := map[string]int{}
	defer func() {
		for _, rt := range rts {
			b.run.timed(rt.UnfreezeCmd(rt.Container(1)))
			b.ensureStopped(rt, rt.Container(1))
		}
	}()
	for _, rt := range b.runtimes {
		name := rt.Container(1)
		if err := b.ensureStopped(rt, name); err != nil {
			return res, err
		}
		if _, err := b.run.timed(rt.StartCmd(name)); err != nil {
			return res, err
		}
		rts = append(rts, rt)
		p, err := checkRunning(rt, name)
		if err != nil {
			return res, err
		}
		inits[rt.Name()] = p.Init
		loop := rt.ExecCmd(name, "sh", "-c", "setsid sh -c '"+freezeLoop+"' >/dev/null 2>&1 </dev/null &")
		if _, err := b.run.timed(loop); err != nil {
			return res, err
		}
		res.Commands = append(res.Commands, b.commands(loop, rt.FreezeCmd(name), rt.UnfreezeCmd(name))...)
	}
	b.sleep(bootSettle)
	last := map[string]int{}
	err := inTurn(b, warmups+b.opts.n, b.runtimes, func(round int, rt runtime) error {
		name, init := rt.Container(1), inits[rt.Name()]
		if err := waitCounting(b, rt, init, last[rt.Name()]); err != nil {
			return err
		}
		down, printed, err := b.run.timedOutput(rt.FreezeCmd(name))
		if err != nil {
			return err
		}
		if last[rt.Name()], err = checkFrozen(b, rt, init); err != nil {
			return err
		}
		if rt.Name() == "lodge" && round >= warmups {
			ms, err := frozenInMs(printed)
			if err != nil {
				return err
			}
			kernel.add("lodge", ms)
		}
		up, err := b.run.timed(rt.UnfreezeCmd(name))
		if err != nil {
			return err
		}
		b.sleep(b.opts.settle)
		bare, err := b.run.timed(rt.VersionCmd())
		if err != nil {
			return err
		}
		if round >= warmups {
			freeze.addDuration(rt.Name(), down)
			thaw.addDuration(rt.Name(), up)
			startup.addDuration(rt.Name(), bare)
		}
		return nil
	})
	res.Rows = []row{
		newRow("freeze latency (busy container)", latency, freeze, targetFreeze),
		newRow("unfreeze latency", latency, thaw, nil),
		newRow("freeze: the kernel's part (lodge's `frozen in N ms`)", latency, kernel, nil),
		newRow("tool start-up only (`lodge version`, `lxc-attach --version`), same rounds", latency, startup, nil),
	}
	for _, rt := range b.runtimes {
		slow, sum := 0, 0.0
		for _, ms := range freeze[rt.Name()] {
			sum += ms
			if ms >= 1000 {
				slow++
			}
		}
		if n := len(freeze[rt.Name()]); n > 0 {
			res.Notes = append(res.Notes, fmt.Sprintf("%s: %d of %d freezes took 1 s or more; mean freeze latency %.2f ms.", rt.Name(), slow, n, sum/float64(n)))
		}
	}
	return res, err
}

// waitCounting waits, untimed, until the busy loop counted past last (its
// value at the previous freeze): it runs, thawed. On a loaded machine the
// loop may need a moment after the unfreeze.
func waitCounting(b *bench, rt runtime, init, last int) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := readCounter(init)
		if err != nil {
			return fmt.Errorf("%s: %w", rt.Name(), err)
		}
		if n > last {
			return nil
		}
		if time.Now().After(deadline) || b.ctx.Err() != nil {
			return fmt.Errorf("%s: the busy loop did not count after the unfreeze (still %d): is it running, thawed?", rt.Name(), n)
		}
		b.sleep(10 * time.Millisecond)
	}
}

// checkFrozen confirms, untimed, that a freeze is complete: the counter
// stands still across a pause. It returns the counter.
func checkFrozen(b *bench, rt runtime, init int) (int, error) {
	first, err := readCounter(init)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", rt.Name(), err)
	}
	b.sleep(20 * time.Millisecond)
	second, err := readCounter(init)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", rt.Name(), err)
	}
	if second != first {
		return 0, fmt.Errorf("%s: the container counted on after its freeze command returned (%d, then %d)", rt.Name(), first, second)
	}
	return first, nil
}

// frozenInLine is what `lodge freeze` prints about the kernel's part.
var frozenInLine = regexp.MustCompile(`frozen in ([0-9]+(?:\.[0-9]+)?) ms`)

func frozenInMs(printed string) (float64, error) {
	m := frozenInLine.FindStringSubmatch(printed)
	if m == nil {
		return 0, fmt.Errorf("lodge freeze printed no `frozen in N ms` line (it printed %q)", strings.TrimSpace(printed))
	}
	return strconv.ParseFloat(m[1], 64)
}

// readCounter reads the busy loop's counter through init's root; -1 when
// the file is empty (the loop truncated it and has not written yet, or was
// frozen in between).
func readCounter(init int) (int, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/root/tmp/c", init))
	if err != nil {
		return 0, fmt.Errorf("the busy loop's counter: %w", err)
	}
	if len(strings.TrimSpace(string(data))) == 0 {
		return -1, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return 0, fmt.Errorf("the busy loop's counter %q: %w", data, err)
	}
	return n, nil
}

func freezeMethod(settle time.Duration) []string {
	return []string{
		"Both containers run busybox init and, started by one exec (untimed, through `setsid`: lxc-attach ends the attached session as it exits), a shell loop that counts as fast as it can, with no fork (busybox sh's builtin `echo`) " +
			"(`" + freezeLoop + "`), so each container keeps a CPU busy; the two containers run side by side on the two cores. " +
			fmt.Sprintf("Each round, per runtime in turn: freeze (**timed**: the command's wall time), check untimed that the "+
				"counter (which moved since the last round's freeze: checked before it) stands still across a 20 ms pause (read from the host through "+
				"`/proc/INIT/root/tmp/c`), unfreeze (**timed**), wait %v, then run the tool with nothing to do (**timed**: its bare start-up, the floor "+
				"of any command of it). %d untimed warm-up rounds first.", settle, warmups),
		"The third row is lodge's own report of the kernel's part (`frozen in N ms`: from its write to `cgroup.freeze` until " +
			"`cgroup.events` says frozen); the rest of lodge's wall time is the process start and finding the container, " +
			"which on this 2-core machine, busy with the two loops, dominates (`lodge version` alone takes tens of ms then).",
		"`lodge freeze` writes `1` to the container's cgroup2 `cgroup.freeze` (the v1 freezer's `freezer.state` where the host " +
			"has no cgroup2) and returns once the kernel reports the group frozen: it waits on `cgroup.events` with inotify " +
			"(cgroup2; the v1 freezer has no event, so lodge polls `freezer.state` from 100 µs, doubling up to 10 ms). " +
			"`lxc-freeze` (lxc 5.0.2) on this hybrid host writes `FROZEN` to the v1 `freezer.state` and, while it reads " +
			"`FREEZING`, sleeps a whole second before it looks again (PITFALLS 26): a freeze that is not complete at that " +
			"first look takes over 1 s, one that is takes only the tool's start-up. The median hides the first kind when " +
			"they are fewer than half: the p90, the mean and the count in the notes show them.",
	}
}
