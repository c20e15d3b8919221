package server

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"lodge/lxcfs/cgstats"
	"lodge/lxcfs/render"
)

// Views renders each file for the container of the process that reads it.
// Renders are cached per container and file for a short while: a reader in
// a tight loop then costs a map lookup, so one container cannot make the
// server busy for everyone. Expired renders are dropped (sweepLocked), so
// memory is bounded by what was read in the last CacheTTL, not by every
// container and file ever read.
type Views struct {
	index *Index
	loads *loadSampler
	now   func() time.Time

	mu    sync.Mutex
	cache map[cacheKey]cached
	swept time.Time // when expired renders were last dropped
}

type cacheKey struct {
	container string // "" is the host
	file      string
}

type cached struct {
	text []byte
	at   time.Time
}

// CacheTTL bounds how stale a view can be; top refreshes every second or
// more. A read this long after the last render of its file renders anew
// (lodge-bench times such reads as the views' uncached rows).
const CacheTTL = 100 * time.Millisecond

// NewViews renders for the containers in index.
func NewViews(index *Index) *Views {
	v := &Views{index: index, now: time.Now, cache: map[cacheKey]cached{}}
	v.loads = newLoadSampler(index)
	return v
}

// Render returns file's text for the reader pid.
func (v *Views) Render(pid int, file string) ([]byte, error) {
	c := v.index.ContainerOf(pid)
	key := cacheKey{file: file}
	if c != nil {
		key.container = c.Name
	}
	now := v.now()
	v.mu.Lock()
	hit, ok := v.cache[key]
	v.mu.Unlock()
	if ok && now.Sub(hit.at) < CacheTTL {
		return hit.text, nil
	}
	text, err := v.render(c, file, now)
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	v.cache[key] = cached{text: text, at: now}
	if now.Sub(v.swept) >= cacheSweepEvery {
		v.sweepLocked(now)
	}
	v.mu.Unlock()
	return text, nil
}

// cacheSweepEvery is how often Render drops expired renders.
const cacheSweepEvery = time.Second

// sweepLocked drops the renders too old to be served again: on a host of
// hundreds of containers, each read now and then (a monitoring agent's
// /proc/meminfo), they would otherwise stay until the container stops (a
// few KiB per container and file).
func (v *Views) sweepLocked(now time.Time) {
	for k, c := range v.cache {
		if now.Sub(c.at) >= CacheTTL {
			delete(v.cache, k)
		}
	}
	v.swept = now
}

// Forget drops the cached views of a container that stopped.
func (v *Views) Forget(container string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for k := range v.cache {
		if k.container == container {
			delete(v.cache, k)
		}
	}
}

// VisibleCPUs returns the host CPUs the reader's container sees, in order.
func (v *Views) VisibleCPUs(pid int) []int {
	c := v.index.ContainerOf(pid)
	if c == nil {
		return hostCPUs()
	}
	cpu, err := cgstats.ReadPlacement(c.Cgroups)
	if err != nil {
		return hostCPUs()
	}
	return render.VisibleCPUs(cpu, c.QuotaView())
}

func (v *Views) render(c *Container, file string, now time.Time) ([]byte, error) {
	if c == nil {
		return hostFile(file)
	}
	switch file {
	case "meminfo", "swaps":
		return v.renderMemory(c, file)
	case "cpuinfo", "online", "possible", "present":
		return v.renderCPUList(c, file)
	case "stat", "uptime":
		return v.renderTimes(c, file, now)
	case "loadavg":
		return []byte(render.Loadavg(v.loads.Load(c))), nil
	case "diskstats":
		return v.renderDiskstats(c)
	}
	return nil, fmt.Errorf("no view of %s", file)
}

func (v *Views) renderMemory(c *Container, file string) ([]byte, error) {
	mem, err := cgstats.ReadMemory(c.Cgroups)
	if err != nil {
		return nil, err
	}
	host, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return nil, err
	}
	if file == "swaps" {
		return []byte(render.Swaps(string(host), mem)), nil
	}
	return []byte(render.Meminfo(string(host), mem)), nil
}

func (v *Views) renderCPUList(c *Container, file string) ([]byte, error) {
	cpu, err := cgstats.ReadPlacement(c.Cgroups)
	if err != nil {
		return nil, err
	}
	if file != "cpuinfo" {
		return []byte(render.CPUList(len(render.VisibleCPUs(cpu, c.QuotaView()))) + "\n"), nil
	}
	host, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return nil, err
	}
	return []byte(render.Cpuinfo(string(host), cpu, c.QuotaView())), nil
}

func (v *Views) renderTimes(c *Container, file string, now time.Time) ([]byte, error) {
	cpu, err := cgstats.ReadCPU(c.Cgroups)
	if err != nil {
		return nil, err
	}
	view := render.Times{CPU: cpu, QuotaView: c.QuotaView(), Started: c.Started, Now: now}
	if file == "uptime" {
		return []byte(render.Uptime(view)), nil
	}
	host, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil, err
	}
	load := v.loads.Load(c)
	view.Running, view.Blocked = load.Running, load.Blocked
	return []byte(render.Stat(string(host), view)), nil
}

func (v *Views) renderDiskstats(c *Container) ([]byte, error) {
	io, err := cgstats.ReadIO(c.Cgroups)
	if err != nil && !errors.Is(err, cgstats.ErrNoController) {
		return nil, err
	}
	host, err := os.ReadFile("/proc/diskstats")
	if err != nil {
		return nil, err
	}
	return []byte(render.Diskstats(string(host), io)), nil
}

// hostFile is what a process outside any container reads: the host's file.
func hostFile(file string) ([]byte, error) {
	switch file {
	case "online", "possible", "present":
		return os.ReadFile(hostCPUDir + "/" + file)
	}
	return os.ReadFile("/proc/" + file)
}

// hostCPUs lists the host's online CPUs, at least CPU 0.
func hostCPUs() []int {
	cpus, err := cgstats.HostCPUs()
	if err != nil || len(cpus) == 0 {
		return []int{0}
	}
	return cpus
}
