package manager

import (
	"bytes"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"lodge/config"
	"lodge/internal/cgroup"
	"lodge/internal/idmap"
	"lodge/internal/store"
)

// A container's state file (ROOT/run/NAME.json) is lodge's record of what
// runs; the kernel holds the truth. When the record is missing, corrupt, or
// names an init that is gone, lodge looks for the container in the kernel:
// its processes are in the cgroup BASE/NAME (the host config's base, the same
// whichever lodge started it, so one directory to read, not a scan of /proc)
// and in a user namespace that maps the container's id range. Both must
// hold, so that a same-named container of another lodge root sharing the
// base is never taken for this one.

// kernelScan looks containers up in the kernel, each name once.
type kernelScan struct {
	m      *Manager
	base   *cgroup.Base
	mu     sync.Mutex // List looks containers up in parallel
	byName map[string][]kernelProc
	// ids is the id table, read once for all containers by List; nil:
	// read it for each container looked up.
	ids map[string]idmap.Range
}

// kernelProc is a process found in a container's cgroup.
type kernelProc struct {
	pid    int
	groups map[string]string // hierarchy key → host directory of the container's group
}

// scanKernel returns a lookup of containers in the kernel.
func (m *Manager) scanKernel() (*kernelScan, error) {
	base, err := m.cgroupBase()
	if err != nil {
		return nil, err
	}
	return &kernelScan{m: m, base: base, byName: map[string][]kernelProc{}}, nil
}

// procs lists the processes in container name's group (and below it: a
// systemd guest's init.scope, say) that run with ids of lodge's pool, as
// every process of a container does.
func (ks *kernelScan) procs(name string) []kernelProc {
	ks.mu.Lock()
	procs, ok := ks.byName[name]
	ks.mu.Unlock()
	if ok {
		return procs
	}
	group := ks.base.Group(name)
	if group.Exists() {
		groups := map[string]string{}
		for key, dir := range group.Paths() {
			if _, err := os.Stat(dir); err == nil {
				groups[key] = dir
			}
		}
		pids, _ := group.Procs()
		for _, pid := range pids {
			if pid != os.Getpid() && ks.m.inIDPool(strconv.Itoa(pid)) {
				procs = append(procs, kernelProc{pid: pid, groups: groups})
			}
		}
	}
	ks.mu.Lock()
	ks.byName[name] = procs
	ks.mu.Unlock()
	return procs
}

// inIDPool tells whether process pid runs as a host id of lodge's id pool,
// as every process of a container does (a non-dumpable one shows as its
// container's root, also in the pool). One stat instead of reading the
// cgroup file of each of the host's own processes keeps a scan cheap: it
// runs at every start and list of a container without a state file.
func (m *Manager) inIDPool(pid string) bool {
	var st syscall.Stat_t
	if syscall.Stat("/proc/"+pid, &st) != nil {
		return false
	}
	pool := m.host.IDMap
	end := uint64(pool.First) + uint64(pool.Size)*uint64(pool.Count)
	return uint64(st.Uid) >= uint64(pool.First) && uint64(st.Uid) < end
}

// find rebuilds the runtime state of container name from the kernel, or
// returns nil if none of its processes runs. ids is the container's id range
// (nil if lodge has none recorded): the processes must be in a user namespace
// that maps it.
func (ks *kernelScan) find(name string, ids *idmap.Range) *store.State {
	procs := ks.procs(name)
	var mine []kernelProc
	for _, p := range procs {
		// Zombies run nothing: a container whose monitor died leaves its
		// init to be reaped by whoever adopted it, maybe never.
		if (ids == nil || hostRoot(p.pid) == ids.HostID) && running(p.pid) {
			mine = append(mine, p)
		}
	}
	if len(mine) == 0 {
		return nil
	}
	st := &store.State{Name: name, Status: store.Running, Cgroups: map[string]string{}, CgroupHost: ks.base.Host()}
	for _, p := range mine {
		for k, v := range p.groups {
			st.Cgroups[k] = v
		}
	}
	if ids != nil {
		st.HostID, st.IDCount = ids.HostID, ids.Size
	}
	if init, ok := findInit(mine); ok {
		st.Init = init
		st.StartedAt = startTime(init)
		st.Monitor = monitorOf(init.PID)
	}
	return st
}

// hostRoot is the host id that container root maps to in pid's user
// namespace (the first line of its uid_map), or 0 when pid is in the host's.
func hostRoot(pid int) uint32 {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "uid_map"))
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(data))
	if len(fields) < 3 || fields[0] != "0" || fields[1] == "0" {
		return 0
	}
	id, err := strconv.ParseUint(fields[1], 10, 32)
	if err != nil {
		return 0
	}
	return uint32(id)
}

// findInit picks the container's init: pid 1 of a pid namespace one level
// below ours (nested containers' inits are deeper).
func findInit(procs []kernelProc) (store.Process, bool) {
	self := len(nsPids(os.Getpid()))
	for _, p := range procs {
		ns := nsPids(p.pid)
		if len(ns) == self+1 && ns[len(ns)-1] == "1" {
			if proc, err := store.ProcessOf(p.pid); err == nil {
				return proc, true
			}
		}
	}
	return store.Process{}, false
}

// nsPids is the NSpid line of /proc/PID/status: the pid in each pid
// namespace from the reader's down to the process's own.
func nsPids(pid int) []string {
	return statusField(pid, "NSpid")
}

func statusField(pid int, key string) []string {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return nil
	}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == key {
			return strings.Fields(v)
		}
	}
	return nil
}

// monitorOf returns init's parent if it is the container's monitor (or its
// idle watcher): a lodge-monitor process. A container whose monitor died has
// been adopted by another process.
func monitorOf(initPID int) store.Process {
	ppid := statusField(initPID, "PPid")
	if len(ppid) != 1 {
		return store.Process{}
	}
	pid, err := strconv.Atoi(ppid[0])
	if err != nil || pid <= 1 {
		return store.Process{}
	}
	cmdline, _ := os.ReadFile(filepath.Join("/proc", ppid[0], "cmdline"))
	args := strings.Split(string(cmdline), "\x00")
	if len(args) < 2 || args[0] != "lodge-monitor" || args[1] != "__monitor" {
		return store.Process{}
	}
	p, err := store.ProcessOf(pid)
	if err != nil {
		return store.Process{}
	}
	return p
}

// startTime converts a process's start (clock ticks since boot) to a time.
func startTime(p store.Process) time.Time {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return time.Time{}
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			boot, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				break
			}
			const ticks = 100 // USER_HZ, fixed by the kernel's ABI
			return time.Unix(boot, 0).Add(time.Duration(p.Start) * time.Second / ticks).UTC()
		}
	}
	return time.Time{}
}

// isSystemd reports whether a process runs systemd (as its command name says).
func isSystemd(pid int) bool {
	comm, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm"))
	return err == nil && strings.TrimSpace(string(comm)) == "systemd"
}

// kernelStopSignal is the stop signal of a container found in the kernel:
// the configured one if the configuration is readable, else what its init
// expects (SIGRTMIN+3 for systemd, SIGPWR for the others), as the monitor chooses.
func (m *Manager) kernelStopSignal(name string, init store.Process) int {
	if cfg, err := config.Load(m.store.ConfigPath(name)); err == nil && cfg.Init.StopSignal != "" {
		if sig, err := config.ParseSignal(cfg.Init.StopSignal); err == nil {
			return int(sig)
		}
	}
	if init.PID > 0 && isSystemd(init.PID) {
		if sig, err := config.ParseSignal("SIGRTMIN+3"); err == nil {
			return int(sig)
		}
	}
	return int(syscall.SIGPWR)
}

// processesOf lists the processes of container name that hold ids of its
// range r, from the kernel: those in its cgroup and in a user namespace that
// maps r, or still on their way into one (an exec between joining the
// cgroup and the user namespace). A same-named container of another lodge
// root is told apart by its ids.
func (m *Manager) processesOf(name string, r idmap.Range) ([]int, error) {
	ks, err := m.scanKernel()
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, p := range ks.procs(name) {
		if idmap.ProcessUses(p.pid, r) || (hostRoot(p.pid) == 0 && running(p.pid)) {
			pids = append(pids, p.pid)
		}
	}
	return pids, nil
}

// running reports whether pid is a live process, not a zombie.
func running(pid int) bool {
	fields, err := store.StatFields(pid)
	return err == nil && fields[0] != "Z" && fields[0] != "X"
}

// inGroupOf reports whether process pid is in a cgroup of container name:
// BASE/NAME or below it, on any hierarchy.
func (m *Manager) inGroupOf(pid int, name string) bool {
	base, err := m.cgroupBase()
	if err != nil {
		return false
	}
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return false
	}
	lines, err := cgroup.ParseProcCgroup(bytes.NewReader(data))
	return err == nil && inContainerGroup(lines, base.Cgroups(), name)
}

// inContainerGroup tells whether a process's /proc/PID/cgroup lines put it
// in BASE/NAME or below, bases given per hierarchy key as cgroup paths.
func inContainerGroup(lines []cgroup.ProcCgroup, bases map[string]string, name string) bool {
	for _, pc := range lines {
		base, ok := bases[pc.Key()]
		if !ok {
			continue
		}
		group := path.Join(base, name)
		if pc.Path == group || strings.HasPrefix(pc.Path, group+"/") {
			return true
		}
	}
	return false
}
