package main

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"
)

func memoryGroup() group {
	return group{Name: "memory", Title: "Host memory per running container", Run: runMemory}
}

// Host memory sampling: a window of samples this far apart, accepted when it
// spreads no more than memStableKiB, given up (keeping the quietest window)
// after memSampleMax samples.
const (
	memSampleEvery = 100 * time.Millisecond
	memWindow      = 5
	memStableKiB   = 1024
	memSampleMax   = 100
	memBootSettle  = 2 * time.Second
)

// memoryRound is one runtime's measurement with K containers running.
type memoryRound struct {
	monitors []processMemory
	host     counterDelta
}

// counterDelta is the host's used memory before starting the containers,
// with them running, and after stopping them again, and the largest
// sampling spread.
type counterDelta struct {
	before, after, afterStop hostMemory
	spread                   uint64 // KiB
}

func (d counterDelta) perContainerKiB(k int) float64 {
	return (float64(d.after.Used) - float64(d.before.Used)) / float64(k)
}

func (d counterDelta) uncorrectedPerContainerKiB(k int) float64 {
	return (float64(d.after.Uncorrected) - float64(d.before.Uncorrected)) / float64(k)
}

func (d counterDelta) describe(k int) string {
	return fmt.Sprintf("%d → %d KiB (%+.0f KiB per container; without the per-CPU correction %+.0f), %d KiB %v after stopping; sampling spread ≤ %d KiB",
		d.before.Used, d.after.Used, d.perContainerKiB(k), d.uncorrectedPerContainerKiB(k), d.afterStop.Used, memBootSettle, d.spread)
}

func runMemory(b *bench) (*groupResult, error) {
	k := b.opts.k
	res := &groupResult{Method: memoryMethod(k, b.opts.memRounds)}
	names, err := b.memoryContainers(res)
	if err != nil {
		return res, err
	}
	pss, rss, dirty, used := samples{}, samples{}, samples{}, samples{}
	err = inTurn(b, b.opts.memRounds, b.runtimes, func(round int, rt runtime) error {
		r, err := b.memoryRound(rt, names[rt.Name()])
		if err != nil {
			return err
		}
		pss.add(rt.Name(), avgMiB(r.monitors, func(m processMemory) uint64 { return m.Pss }))
		rss.add(rt.Name(), avgMiB(r.monitors, func(m processMemory) uint64 { return m.Rss }))
		dirty.add(rt.Name(), avgMiB(r.monitors, func(m processMemory) uint64 { return m.PrivateDirty }))
		used.add(rt.Name(), r.host.perContainerKiB(k)/1024)
		res.Notes = append(res.Notes, fmt.Sprintf("%s round %d: host used memory %s", rt.Name(), round+1, r.host.describe(k)))
		return nil
	})
	res.Rows = []row{
		newRow("monitor PSS per container", memory, pss, targetNoLarger),
		newRow("monitor RSS per container", memory, rss, nil),
		newRow("monitor Private_Dirty per container", memory, dirty, nil),
		newRow("host used memory per container", memory, used, targetNoLarger),
	}
	return res, err
}

func memoryMethod(k, rounds int) []string {
	return []string{
		fmt.Sprintf("K = %d containers per runtime (lodge b1..b%d, LXC c1..c%d, all busybox, made as in Setup). "+
			"Each of %d rounds, per runtime (alternating which goes first): sample the host's used memory, start the K containers "+
			"one after another, wait %v for them to boot, sample again, read the monitors' memory, then stop all K forcibly and wait "+
			"for their processes to exit. Only one runtime's containers run at a time.", k, k, k, rounds, memBootSettle),
		"**Monitor** rows: the per-container process of the runtime on the host, `lodge-monitor` (pid `monitor_pid` from " +
			"`lodge info NAME --format json`) and `[lxc monitor] LXCPATH NAME` (the parent of the init pid that `lxc-info -p` " +
			"gives), from `/proc/PID/smaps_rollup`: PSS (shared pages divided among the processes that map them, so the K " +
			"monitors share their binary and libraries), RSS and Private_Dirty (memory that is the monitor's alone), averaged " +
			"over the K monitors; the table shows the median and p90 of the per-round averages.",
		fmt.Sprintf("**Host used memory** row: MemTotal − MemAvailable from /proc/meminfo, minus the free pages held on "+
			"per-CPU lists (the `count:` of every pageset in /proc/zoneinfo), after minus before starting the K containers, "+
			"divided by K. It includes everything a container costs the host: monitor, init and getty, page tables, "+
			"namespaces, cgroups in every hierarchy, mounts. The per-CPU correction matters on this kernel: it keeps tens of "+
			"MiB of free pages on per-CPU lists, sized on the fly, which meminfo counts as used; freed pages go there and "+
			"are handed out again first, so the uncorrected difference (listed below) can even be negative. "+
			"Each sample is the median of %d readings %v apart that lie within %d KiB of each other "+
			"(the quietest window if none is that quiet within %d readings). The readings before, with the containers "+
			"running, and %v after stopping them are listed below; other work on the machine adds noise.",
			memWindow, memSampleEvery, memStableKiB, memSampleMax, memBootSettle),
	}
}

// memoryContainers creates containers 2..K of each runtime (1 exists) and
// lists the commands; it returns the names by runtime.
func (b *bench) memoryContainers(res *groupResult) (map[string][]string, error) {
	k := b.opts.k
	names := map[string][]string{}
	for _, rt := range b.runtimes {
		for i := 1; i <= k; i++ {
			name := rt.Container(i)
			names[rt.Name()] = append(names[rt.Name()], name)
			if i == 1 {
				if err := b.ensureStopped(rt, name); err != nil {
					return nil, err
				}
				continue
			}
			if err := rt.Create(name); err != nil {
				return nil, fmt.Errorf("create %s container %s: %w", rt.Name(), name, err)
			}
		}
		first, last := rt.Container(1), rt.Container(k)
		res.Commands = append(res.Commands,
			fmt.Sprintf("%s   # and so on up to %s", b.run.display(rt.StartCmd(first)), last),
			fmt.Sprintf("%s   # the monitor pid, per container", b.run.display(rt.ProcsCmd(first))),
			fmt.Sprintf("%s   # each, after measuring", b.run.display(rt.StopCmd(first, true))))
	}
	return names, nil
}

// memoryRound starts the containers, measures, and stops them again.
func (b *bench) memoryRound(rt runtime, names []string) (memoryRound, error) {
	var r memoryRound
	var err error
	if r.host.before, err = b.sampleUsed(&r); err != nil {
		return r, err
	}
	var running []procs
	stopAll := func() error {
		var errs []error
		for i, p := range running {
			errs = append(errs, b.stopAndWait(rt, names[i], p))
		}
		running = nil
		return errors.Join(errs...)
	}
	defer stopAll()
	for _, name := range names {
		if _, err := b.run.timed(rt.StartCmd(name)); err != nil {
			return r, err
		}
		p, err := checkRunning(rt, name)
		if err != nil {
			return r, err
		}
		running = append(running, p)
	}
	b.sleep(memBootSettle)
	if r.host.after, err = b.sampleUsed(&r); err != nil {
		return r, err
	}
	for _, p := range running {
		m, err := readProcessMemory(p.Monitor)
		if err != nil {
			return r, fmt.Errorf("%s monitor: %w", rt.Name(), err)
		}
		r.monitors = append(r.monitors, m)
	}
	if err := stopAll(); err != nil {
		return r, err
	}
	b.sleep(memBootSettle)
	r.host.afterStop, err = b.sampleUsed(&r)
	return r, err
}

// sampleUsed takes a stable sample of the host's used memory and notes the
// spread.
func (b *bench) sampleUsed(r *memoryRound) (hostMemory, error) {
	v, spread, err := b.stableUsed()
	r.host.spread = max(r.host.spread, spread)
	return v, err
}

// stableUsed samples the host's used memory until memWindow consecutive
// samples lie within memStableKiB, and returns their median and spread.
func (b *bench) stableUsed() (median hostMemory, spread uint64, err error) {
	var window []hostMemory
	bestSpread := ^uint64(0)
	for i := 0; i < memSampleMax && b.ctx.Err() == nil; i++ {
		v, err := readHostMemory()
		if err != nil {
			return median, 0, err
		}
		window = append(window, v)
		if len(window) > memWindow {
			window = window[1:]
		}
		if len(window) == memWindow {
			sorted := slices.Clone(window)
			slices.SortFunc(sorted, func(a, b hostMemory) int { return cmp.Compare(a.Used, b.Used) })
			if s := sorted[len(sorted)-1].Used - sorted[0].Used; s < bestSpread {
				bestSpread, median = s, sorted[len(sorted)/2]
			}
			if bestSpread <= memStableKiB {
				break
			}
		}
		b.sleep(memSampleEvery)
	}
	return median, bestSpread, b.ctx.Err()
}

// avgMiB is the mean of one field over the monitors, in MiB.
func avgMiB(ms []processMemory, field func(processMemory) uint64) float64 {
	var values []float64
	for _, m := range ms {
		values = append(values, float64(field(m))/1024)
	}
	return mean(values)
}
