package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"lodge/internal/parallel"
)

// The density group measures a host of many running containers: how
// listing, starting one more, exec and memory behave with 1, 10, 100 and
// -density-max busybox containers running, lodge and LXC each on its own.

func densityGroup() group {
	return group{Name: "density", Title: "A host of many containers", Run: runDensity}
}

// densityReads are the view files each container reads once as it joins,
// so that the views servers hold what a host's monitoring would make them
// hold.
var densityReads = []string{"cat", "/proc/meminfo", "/proc/cpuinfo", "/proc/stat", "/proc/uptime", "/proc/loadavg"}

// densityLevels are the counts measured: 1, 10 and 100 below max, and max.
func densityLevels(max int) []int {
	var levels []int
	for _, n := range []int{1, 10, 100} {
		if n < max {
			levels = append(levels, n)
		}
	}
	return append(levels, max)
}

// densityMetrics are one runtime's readings, by metric and count.
type densityMetrics struct {
	list, listCPU, start, exec map[int][]float64 // ms
	hostMiB                    map[int]float64   // host used memory per container
	serverPss, serverRss       map[int]float64   // the views server, MiB
}

func newDensityMetrics() *densityMetrics {
	return &densityMetrics{list: map[int][]float64{}, listCPU: map[int][]float64{}, start: map[int][]float64{},
		exec: map[int][]float64{}, hostMiB: map[int]float64{}, serverPss: map[int]float64{}, serverRss: map[int]float64{}}
}

// densityFleet is the containers one runtime runs for the group.
type densityFleet struct {
	rt      runtime
	prefix  string   // container names: PREFIX1, PREFIX2, ...; PREFIXx is the one more
	created []string // everything created, to delete at the end
	running []string
	// Creation is untimed setup; its times are kept to say what it cost.
	createMs []float64     // per container: lodge create, or lxc-copy and the config lines
	seedTime time.Duration // LXC: lxc-create -t busybox of the seed, once
}

func runDensity(b *bench) (*groupResult, error) {
	levels := densityLevels(b.opts.densityMax)
	res := &groupResult{Method: densityMethod(levels, b.opts.densityRounds)}
	lx, err := b.startLXCFS()
	if err != nil {
		return res, err
	}
	b.addCleanup(lx.stop)
	measured := map[string]*densityMetrics{}
	reached := map[string]int{}
	for _, rt := range b.runtimes {
		f := &densityFleet{rt: rt, prefix: map[string]string{"lodge": "d", "LXC": "cd"}[rt.Name()]}
		m := newDensityMetrics()
		measured[rt.Name()] = m
		upTo := levels
		if rt.Name() == "LXC" {
			upTo = slices.DeleteFunc(slices.Clone(levels), func(n int) bool { return n > b.opts.densityLXCMax })
			if len(upTo) < len(levels) {
				res.Notes = append(res.Notes, fmt.Sprintf("LXC was run up to %d containers (-density-lxc-max).", b.opts.densityLXCMax))
			}
		}
		err := b.densityRun(f, lx, upTo, m, res)
		reached[rt.Name()] = len(f.running)
		if note := densityCreationNote(f); note != "" {
			res.Notes = append(res.Notes, note)
		}
		b.logf("density: %s: removing %d containers", rt.Name(), len(f.created))
		err = errors.Join(err, b.densityTeardown(f))
		if err != nil && rt.Name() == "lodge" {
			return res, err
		}
		if err != nil {
			res.Notes = append(res.Notes, fmt.Sprintf("LXC stopped at %d running containers: %v", reached[rt.Name()], err))
		}
	}
	res.Rows = densityRows(levels, measured, reached)
	res.Notes = append(res.Notes, densityGoals(levels, measured["lodge"])...)
	return res, nil
}

// densityRun grows rt's fleet to each level and measures there.
func (b *bench) densityRun(f *densityFleet, lx *lxcfsServer, levels []int, m *densityMetrics, res *groupResult) error {
	extra := f.prefix + "x"
	if f.rt.Name() == "LXC" {
		t0 := time.Now()
		if err := b.lxc.ensureSeed(); err != nil {
			return err
		}
		f.seedTime = time.Since(t0)
	}
	if err := b.densityCreate(f, lx, extra); err != nil {
		return err
	}
	base, _, err := b.stableUsed()
	if err != nil {
		return err
	}
	res.Commands = append(res.Commands, b.densityCommands(f.rt, f.prefix, extra)...)
	for _, level := range levels {
		b.logf("density: %s: growing to %d containers", f.rt.Name(), level)
		for len(f.running) < level {
			if err := b.ctx.Err(); err != nil {
				return err // interrupted: the teardown deletes what was made
			}
			if err := b.densityAdd(f, lx); err != nil {
				return err
			}
		}
		b.sleep(memBootSettle)
		if err := b.densityMeasure(f, level, base, lx, m); err != nil {
			return fmt.Errorf("at %d containers: %w", level, err)
		}
	}
	return nil
}

// densityCreate creates a busybox container of the fleet; LXC's are
// copies of one lxc-create'd seed (lxc-copy) and get lxcfs's files, as
// LXC's lxcfs hook gives them.
func (b *bench) densityCreate(f *densityFleet, lx *lxcfsServer, name string) error {
	f.created = append(f.created, name)
	t0 := time.Now()
	if f.rt.Name() == "lodge" {
		if err := b.lodge.Create(name); err != nil {
			return err
		}
	} else {
		if err := b.lxc.CreateCopy(name); err != nil {
			return err
		}
		if err := b.bindLXCViews(lx, name); err != nil {
			return err
		}
	}
	f.createMs = append(f.createMs, ms(time.Since(t0)))
	return nil
}

// densityCreationNote says what the untimed creation of rt's fleet cost.
func densityCreationNote(f *densityFleet) string {
	if len(f.createMs) == 0 {
		return ""
	}
	s := summarize(f.createMs)
	if f.rt.Name() == "lodge" {
		return fmt.Sprintf("Creating lodge's %d containers (untimed setup): `lodge create` %.0f ms per container (median; p90 %.0f ms).",
			len(f.createMs), s.Median, s.P90)
	}
	return fmt.Sprintf("Creating LXC's %d containers (untimed setup): `lxc-create -t busybox` of the seed %.1f s once, then `lxc-copy` "+
		"and the config lines %.0f ms per container (median; p90 %.0f ms).", len(f.createMs), f.seedTime.Seconds(), s.Median, s.P90)
}

// densityAdd creates, starts and reads the views of one more container.
func (b *bench) densityAdd(f *densityFleet, lx *lxcfsServer) error {
	name := fmt.Sprintf("%s%d", f.prefix, len(f.running)+1)
	if err := b.densityCreate(f, lx, name); err != nil {
		return err
	}
	if _, err := b.run.timed(f.rt.StartCmd(name)); err != nil {
		return err
	}
	f.running = append(f.running, name)
	_, err := b.run.output(f.rt.ExecCmd(name, densityReads...)...)
	return err
}

// densityMeasure takes every reading at one level.
func (b *bench) densityMeasure(f *densityFleet, level int, base hostMemory, lx *lxcfsServer, m *densityMetrics) error {
	used, _, err := b.stableUsed()
	if err != nil {
		return err
	}
	m.hostMiB[level] = (float64(used.Used) - float64(base.Used)) / float64(level) / 1024
	pids, err := b.viewsServerPIDs(f.rt, lx)
	if err != nil {
		return err
	}
	for _, pid := range pids {
		pm, err := readProcessMemory(pid)
		if err != nil {
			return err
		}
		m.serverPss[level] += float64(pm.Pss) / 1024
		m.serverRss[level] += float64(pm.Rss) / 1024
	}
	extra := f.prefix + "x"
	for round := range warmups + b.opts.densityRounds {
		wall, cpu, err := b.run.timedCPU(densityListCmd(b, f.rt))
		if err != nil {
			return err
		}
		up, err := b.run.timed(f.rt.StartCmd(extra))
		if err != nil {
			return err
		}
		p, err := checkRunning(f.rt, extra)
		if err != nil {
			return err
		}
		if err := b.stopAndWait(f.rt, extra, p); err != nil {
			return err
		}
		ex, err := b.run.timed(f.rt.ExecCmd(f.running[0], "true"))
		if err != nil {
			return err
		}
		if round >= warmups {
			m.list[level] = append(m.list[level], ms(wall))
			m.listCPU[level] = append(m.listCPU[level], ms(cpu))
			m.start[level] = append(m.start[level], ms(up))
			m.exec[level] = append(m.exec[level], ms(ex))
		}
		b.sleep(b.opts.settle)
	}
	return nil
}

// densityListCmd lists every container with its state: `lodge list` and
// `lxc-ls -f` (--fancy: name, state, autostart, groups, addresses,
// unprivileged; it asks each running container's monitor, as lodge list
// reads each container's state).
func densityListCmd(b *bench, rt runtime) []string {
	if rt.Name() == "lodge" {
		return b.lodge.argv("list")
	}
	return b.lxc.tool("lxc-ls", "-f", "-P", b.lxc.path)
}

func (b *bench) densityCommands(rt runtime, prefix, extra string) []string {
	first := prefix + "1"
	var create []string
	if rt.Name() == "lodge" {
		create = []string{b.run.display(b.lodge.CreateCmd(first)) + "   # untimed, for each container"}
	} else {
		create = []string{
			b.run.display(b.lxc.createCmdIn(b.lxc.seedPath, lxcSeedName)) + "   # once, untimed",
			b.run.display(b.lxc.CopyCmd(first)) + "   # untimed, for each container; then the id map, cgroup, seccomp and lxcfs lines appended to its config",
		}
	}
	return append(create,
		fmt.Sprintf("%s   # then %s, for each container; and the same for %s2, %s3, ...", b.run.display(rt.StartCmd(first)),
			b.run.display(rt.ExecCmd(first, densityReads...)), prefix, prefix),
		b.run.display(densityListCmd(b, rt)),
		b.run.display(rt.StartCmd(extra))+"   # one more container, then "+b.run.display(rt.StopCmd(extra, true)),
		b.run.display(rt.ExecCmd(first, "true")),
	)
}

// densityTeardown deletes the fleet, a few containers at a time.
func (b *bench) densityTeardown(f *densityFleet) error {
	errs := make([]error, len(f.created))
	parallel.ForEach(len(f.created), 4, func(i int) { errs[i] = f.rt.Destroy(f.created[i]) })
	f.created, f.running = nil, nil
	return errors.Join(errs...)
}

// densityRows lays the readings out, one row per metric and count.
func densityRows(levels []int, measured map[string]*densityMetrics, reached map[string]int) []row {
	var rows []row
	add := func(metric string, k kind, t *target, pick func(*densityMetrics, int) []float64) {
		for _, level := range levels {
			r := row{Metric: fmt.Sprintf("%s, %d running", metric, level), Kind: k, Target: t}
			r.Lodge = pick(measured["lodge"], level)
			if lxc := measured["LXC"]; lxc != nil {
				r.LXC = pick(lxc, level)
				if len(r.LXC) == 0 {
					r.LXCUnavailable = fmt.Sprintf("LXC run up to %d containers", reached["LXC"])
				}
			}
			rows = append(rows, r)
		}
	}
	listAim := &target{Text: "< 200 ms", MaxLodge: 200}
	add("list (`lodge list` / `lxc-ls -f`)", latency, nil, func(m *densityMetrics, n int) []float64 { return m.list[n] })
	rows[len(rows)-1].Target = listAim // the aim is for the highest count
	add("list, CPU time (user+sys)", latency, nil, func(m *densityMetrics, n int) []float64 { return m.listCPU[n] })
	add("start latency of one more", latency, nil, func(m *densityMetrics, n int) []float64 { return m.start[n] })
	add("exec latency (`true`)", latency, nil, func(m *densityMetrics, n int) []float64 { return m.exec[n] })
	add("host used memory per container", memory, nil, func(m *densityMetrics, n int) []float64 { return single(m.hostMiB, n) })
	add("views server PSS (lodge-lxcfs / lxcfs)", memory, nil, func(m *densityMetrics, n int) []float64 { return single(m.serverPss, n) })
	add("views server RSS", memory, nil, func(m *densityMetrics, n int) []float64 { return single(m.serverRss, n) })
	return rows
}

// single is a one-reading sample, or none.
func single(v map[int]float64, level int) []float64 {
	if x, ok := v[level]; ok {
		return []float64{x}
	}
	return nil
}

// densityGoals checks the goals that compare lodge with itself.
func densityGoals(levels []int, m *densityMetrics) []string {
	if m == nil || len(levels) < 2 {
		return nil
	}
	low, high := levels[0], levels[len(levels)-1]
	var notes []string
	ratio := func(what string, v map[int][]float64, limit float64) {
		a, z := summarize(v[low]).Median, summarize(v[high]).Median
		if a <= 0 || z <= 0 {
			return
		}
		verdict := "PASS"
		if z/a > limit {
			verdict = "MISS"
		}
		notes = append(notes, fmt.Sprintf("lodge %s at %d running is %.2fx of at %d (goal ≤ %.1fx): %s.", what, high, z/a, low, limit, verdict))
	}
	ratio("start latency", m.start, 1.2)
	ratio("exec latency", m.exec, 1.2)
	if ten, ok := m.hostMiB[10]; ok && slices.Contains(levels, 10) {
		top := m.hostMiB[high]
		verdict := "PASS"
		switch {
		case ten <= 0 || top <= 0:
			verdict = "n/a, a reading below zero is the machine's noise"
		case top > ten:
			verdict = "MISS"
		}
		notes = append(notes, fmt.Sprintf("lodge host used memory per container at %d running: %.2f MiB, at 10: %.2f MiB (goal: no larger): %s (readings at 10 carry the machine's noise divided by 10 only).", high, top, ten, verdict))
	}
	return notes
}

func densityMethod(levels []int, rounds int) []string {
	counts := make([]string, len(levels))
	for i, n := range levels {
		counts[i] = fmt.Sprint(n)
	}
	return []string{
		fmt.Sprintf("Per runtime, one after the other (only one runtime's containers run at a time): busybox containers are created "+
			"and started one by one (lodge d1, d2, ...; LXC cd1, cd2, ..., each LXC one with lxcfs's files bound as LXC's lxcfs hook "+
			"binds them), and each reads `/proc/meminfo`, `cpuinfo`, `stat`, `uptime` and `loadavg` once through exec, so that both "+
			"views servers hold what a host's monitoring would make them hold. At %s running containers (after %v to settle), "+
			"the group takes %d rounds (after %d untimed ones) of: the list command (**timed**, its wall and its CPU time, user + "+
			"system, from the kernel's rusage of the child), a start of one more stopped container (**timed**) and its forced stop "+
			"(untimed, waiting until its processes are gone), and an exec of `true` in the first container (**timed**).",
			strings.Join(counts, ", "), memBootSettle, rounds, warmups),
		"Creating the containers is untimed setup, so how they are made does not change what is measured. lodge's are made by " +
			"`lodge create --template busybox`. LXC's are full copies (`lxc-copy -B dir`: an rsync of a 2 MB rootfs) of one busybox " +
			"container that `lxc-create -t busybox` made once, since the template takes seconds per container here (it links each " +
			"busybox applet with its own `ln` process); each copy is then configured as the other groups configure an lxc-create'd " +
			"container (unprivileged id map, idmapped rootfs, cgroups under the benchmark's, LXC's default seccomp profile, lxcfs's " +
			"files). A copy's config differs from an lxc-create'd one's only in its name (`lxc.uts.name`) and rootfs path (the " +
			"containers have no network, so no MAC address to change). The notes say what creation cost.",
		"`lxc-ls -f` is LXC's listing with each container's state (and autostart, groups, addresses): like `lodge list`, it " +
			"looks at every container, asking each running one's monitor over its command socket. `lxc-ls --running` would only " +
			"print names, which `lodge list` has no equivalent of.",
		fmt.Sprintf("**Host used memory per container**: as in the memory group (MemTotal − MemAvailable, corrected for per-CPU free "+
			"pages, a stable window of %d readings) with the containers running, minus the same before the runtime's first "+
			"container started, divided by the count. Other work on the machine adds noise, divided by the count: at 1 and 10 it "+
			"can swamp the reading.", memWindow),
		"**Views server**: PSS and RSS from `/proc/PID/smaps_rollup` of lodge's server plus its supervisor (`lodge lxcfs status`), " +
			"and of the lxcfs the benchmark runs for LXC, read once per count.",
		"The list row's target is the issue's absolute aim at the highest count; the start and exec goals (within 1.2x of the " +
			"lowest count) and the memory goal (no larger than at 10) compare lodge with itself and are checked in the notes.",
	}
}
