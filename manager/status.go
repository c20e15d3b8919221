package manager

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"lodge/config"
	"lodge/internal/idmap"
	"lodge/internal/parallel"
	"lodge/internal/store"
)

// Info describes a container for `lodge list` and `lodge info`.
type Info struct {
	Name       string            `json:"name" yaml:"name"`
	State      store.Status      `json:"state" yaml:"state"`
	PID        int               `json:"pid" yaml:"pid"` // host pid of init; 0 when stopped
	Monitor    string            `json:"monitor" yaml:"monitor"`
	MonitorPID int               `json:"monitor_pid" yaml:"monitor_pid"`
	Template   string            `json:"template,omitempty" yaml:"template,omitempty"`
	Image      string            `json:"image,omitempty" yaml:"image,omitempty"`
	Created    time.Time         `json:"created" yaml:"created"`
	StartedAt  *time.Time        `json:"started_at,omitempty" yaml:"started_at,omitempty"`
	IDMap      string            `json:"idmap,omitempty" yaml:"idmap,omitempty"`
	Rootfs     string            `json:"rootfs" yaml:"rootfs"`
	RootfsMode string            `json:"rootfs_mode,omitempty" yaml:"rootfs_mode,omitempty"`
	Limits     LimitsInfo        `json:"limits" yaml:"limits"`
	Cgroups    map[string]string `json:"cgroups,omitempty" yaml:"cgroups,omitempty"`
	// NICs are the configured network interfaces; they are attached at
	// start by a later version (the data plane), so addresses are as
	// configured: a static one, or "" for DHCP.
	NICs []NICInfo `json:"nics,omitempty" yaml:"nics,omitempty"`
	// Proxies are the configured port forwards, "NAME PROTO:LISTEN:HOSTPORT:CONTAINERPORT".
	Proxies []string `json:"proxies,omitempty" yaml:"proxies,omitempty"`
	// Storage is filled by Info only: its disk usage costs a walk of the
	// tree on some backends, too slow for every line of `lodge list`.
	Storage *StorageInfo `json:"storage,omitempty" yaml:"storage,omitempty"`
	// Checkpoints are its complete checkpoints (CRIU), filled by Info only.
	Checkpoints []CheckpointInfo `json:"checkpoints,omitempty" yaml:"checkpoints,omitempty"`
	// Migration says that the container was restored here by a migration
	// whose source has not committed it yet: it is held frozen (filled by
	// Info only).
	Migration string `json:"migration,omitempty" yaml:"migration,omitempty"`
	// Error says why the container cannot be described fully (a broken
	// config.toml, say); `lodge list` still shows it, with its true state.
	Error string `json:"error,omitempty" yaml:"error,omitempty"`
}

// LimitsInfo shows the configured limits; empty means unlimited.
type LimitsInfo struct {
	Memory string  `json:"memory,omitempty" yaml:"memory,omitempty"`
	CPU    float64 `json:"cpu,omitempty" yaml:"cpu,omitempty"`
	Cpuset string  `json:"cpuset,omitempty" yaml:"cpuset,omitempty"`
	Pids   int64   `json:"pids,omitempty" yaml:"pids,omitempty"`
	Disk   string  `json:"disk,omitempty" yaml:"disk,omitempty"`
	// NetIngress and NetEgress are limits.network.* (per bridged NIC).
	NetIngress string `json:"network_ingress,omitempty" yaml:"network_ingress,omitempty"`
	NetEgress  string `json:"network_egress,omitempty" yaml:"network_egress,omitempty"`
}

// NICInfo is one configured NIC of a container.
type NICInfo struct {
	Name    string `json:"name" yaml:"name"`
	Type    string `json:"type" yaml:"type"`
	Network string `json:"network,omitempty" yaml:"network,omitempty"`
	Parent  string `json:"parent,omitempty" yaml:"parent,omitempty"`
	HWAddr  string `json:"hwaddr,omitempty" yaml:"hwaddr,omitempty"`
	IPv4    string `json:"ipv4,omitempty" yaml:"ipv4,omitempty"`
	IPv6    string `json:"ipv6,omitempty" yaml:"ipv6,omitempty"`
	MTU     int    `json:"mtu,omitempty" yaml:"mtu,omitempty"`
	// While the container runs: the addresses it was given (static, or
	// handed out by the network's DHCP) and the host end of its veth.
	Address4 string `json:"address4,omitempty" yaml:"address4,omitempty"`
	Address6 string `json:"address6,omitempty" yaml:"address6,omitempty"`
	HostIf   string `json:"host_interface,omitempty" yaml:"host_interface,omitempty"`
}

func nicInfos(cfg *config.Container) []NICInfo {
	var out []NICInfo
	for i, n := range cfg.Networks {
		out = append(out, NICInfo{Name: n.InterfaceName(i), Type: n.Kind(), Network: n.NetworkName(), Parent: n.Parent,
			HWAddr: n.HWAddr, IPv4: n.IPv4, IPv6: n.IPv6, MTU: n.MTU})
	}
	return out
}

// Monitor column values.
const (
	monitorRunning = "running"
	monitorGone    = "gone" // the container runs on without its monitor
	monitorNone    = "-"
)

// List describes every container, sorted by name. A container whose files
// are damaged is listed too, with its true state (from the kernel) and what
// is wrong in Info.Error: one container's damage never hides the others.
func (m *Manager) List() ([]Info, error) {
	names, err := m.store.Names()
	if err != nil || len(names) == 0 {
		return nil, err
	}
	ks, err := m.scanKernel()
	if err != nil {
		return nil, err
	}
	// One read of the id table for all of them, not one per container.
	if ids, err := m.allocator().List(); err == nil {
		ks.ids = ids
		if ks.ids == nil {
			ks.ids = map[string]idmap.Range{}
		}
	}
	infos := make([]Info, len(names))
	parallel.ForEach(len(names), listWorkers, func(i int) { infos[i] = m.describe(names[i], ks) })
	return infos, nil
}

// listWorkers is how many containers List describes at a time. Describing
// one is a dozen small reads (config, state, /proc, cgroup files), each a
// wait in the kernel; on a loaded 2-CPU host more than a few add nothing.
const listWorkers = 4

// Info describes one container. Its state comes from the kernel: a recorded
// init that is gone means STOPPED, whatever the state file says, and a
// container running without a (readable) state file is found by its cgroup.
func (m *Manager) Info(name string) (Info, error) {
	if err := m.store.MustExist(name); err != nil {
		return Info{}, err
	}
	info := m.describe(name, nil)
	info.Storage = m.storageInfo(context.Background(), name)
	info.Checkpoints = m.checkpointList(name)
	if _, held := m.heldForMigration(name); held {
		info.Migration = "held frozen for the commit of its migration's source; if the source lost its copy: lodge unfreeze " + name + " keeps this one; if it runs there: lodge delete --force " + name + " here"
	}
	return info, nil
}

// describe builds the Info of an existing container, reporting damage in
// Info.Error rather than failing. ks is a scan of the kernel to use, or nil.
func (m *Manager) describe(name string, ks *kernelScan) Info {
	info := Info{Name: name, State: store.Stopped, Monitor: monitorNone, Rootfs: m.store.RootfsPath(name)}
	var problems []string
	if cfg, err := config.Load(m.store.ConfigPath(name)); err != nil {
		problems = append(problems, m.configProblem(name, err))
	} else {
		info.Template, info.Image, info.Created = cfg.Source.Template, cfg.Source.Image, cfg.Source.Created
		info.Limits = limitsInfo(cfg)
		info.NICs = nicInfos(cfg)
		info.Proxies = proxyInfos(cfg)
	}
	if r, ok := m.idRange(name, ks); ok {
		info.IDMap = r.String()
	}
	obs, err := m.observe(name, ks)
	switch {
	case err != nil:
		problems = append(problems, err.Error())
	case obs.problem != "" && m.store.Busy(name):
		// A start or stop holds the container: the record is being written
		// or removed right now, not damaged.
	case obs.problem != "":
		problems = append(problems, obs.problem)
	}
	// Before addRuntime: a freeze a killed lodge left is thawed here.
	problems = append(problems, m.storageProblems(name)...)
	if obs.st != nil {
		m.addRuntime(&info, obs.st)
		m.addAttachments(info.NICs, name)
	} else if err == nil {
		m.releaseStoppedNICs(name)
	}
	info.Error = strings.Join(problems, "; ")
	return info
}

// idRange is container name's id range, from the table ks read with it (a
// list of hundreds of containers reads the table once), else from the file.
func (m *Manager) idRange(name string, ks *kernelScan) (idmap.Range, bool) {
	if ks != nil && ks.ids != nil {
		r, ok := ks.ids[name]
		return r, ok
	}
	r, ok, err := m.allocator().Lookup(name)
	return r, err == nil && ok
}

// loadConfig reads a container's configuration; a missing or broken file is
// bad input (ErrInvalid) with the fix in the message.
func (m *Manager) loadConfig(name string) (*config.Container, error) {
	cfg, err := config.Load(m.store.ConfigPath(name))
	if err != nil {
		return nil, invalid(fmt.Errorf("container %q: %s", name, m.configProblem(name, err)))
	}
	return cfg, nil
}

// configProblem says what is wrong with a container's config.toml and how to fix it.
func (m *Manager) configProblem(name string, err error) string {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Sprintf("its configuration %s is missing: restore it from a backup, or remove the container with lodge delete --force %s (stop works without it)",
			m.store.ConfigPath(name), name)
	}
	return err.Error()
}

func (m *Manager) addRuntime(info *Info, st *store.State) {
	info.State = st.Status
	info.PID = st.Init.PID
	info.StartedAt = &st.StartedAt
	info.RootfsMode = st.RootfsMode
	info.Cgroups = st.Cgroups
	info.Monitor = monitorGone
	if st.Monitor.Alive() {
		info.Monitor = monitorRunning
		info.MonitorPID = st.Monitor.PID
	} else if st.Status == store.Stopping {
		info.State = store.Running // nobody is stopping it any more
	}
	if frozen, err := m.openGroup(st.Cgroups).Frozen(); err == nil && frozen {
		info.State = store.Frozen
	}
}

func limitsInfo(cfg *config.Container) LimitsInfo {
	l := LimitsInfo{CPU: cfg.Limits.CPU, Cpuset: cfg.Limits.Cpuset, Pids: cfg.Limits.Pids}
	if cfg.Limits.Memory > 0 {
		l.Memory = cfg.Limits.Memory.String()
	}
	if cfg.Limits.Disk > 0 {
		l.Disk = cfg.Limits.Disk.String()
	}
	if r := cfg.Limits.Network.Ingress; r > 0 {
		l.NetIngress = r.String()
	}
	if r := cfg.Limits.Network.Egress; r > 0 {
		l.NetEgress = r.String()
	}
	return l
}

// liveState returns the state of a container whose init is alive, or nil
// when nothing of it runs. See observe.
func (m *Manager) liveState(name string) (*store.State, error) {
	obs, err := m.observe(name, nil)
	return obs.st, err
}

// observation is a container's runtime state as lodge establishes it: its
// state file, checked against the kernel.
type observation struct {
	st         *store.State // nil: nothing of the container runs
	fromKernel bool         // st was rebuilt from the kernel: the state file is damaged
	problem    string       // what is wrong with the state file, and the fix; "" if nothing
}

// observe trusts the state file while the init it names is alive (pid and
// start time) and it was written in this boot of the host. Otherwise (no
// file, a corrupt one, one from an earlier boot, or a dead init) the kernel
// decides: processes in the container's cgroup that hold its id range mean
// it runs. ks is a scan of /proc to use, or nil to make one.
func (m *Manager) observe(name string, ks *kernelScan) (observation, error) {
	st, readErr := m.store.ReadState(name)
	if readErr == nil && st != nil && st.Init.Alive() {
		return observation{st: st}, nil
	}
	if ks == nil {
		var err error
		if ks, err = m.scanKernel(); err != nil {
			return observation{}, err
		}
	}
	var ids *idmap.Range
	if r, ok := m.idRange(name, ks); ok {
		ids = &r
	}
	found := ks.find(name, ids)
	statePath := m.store.StatePath(name)
	if found == nil {
		// A state file from an earlier boot of the host is no damage: the
		// container stopped with the host, and lodge start replaces it.
		if readErr != nil && !errors.Is(readErr, store.ErrOtherBoot) {
			return observation{problem: fmt.Sprintf("%v; nothing of it runs, so lodge start %s replaces the file", readErr, name)}, nil
		}
		return observation{}, nil
	}
	if st != nil && st.Monitor.Alive() && found.Monitor == st.Monitor {
		// The recorded monitor is booting the container again (a guest
		// reboot) and records the new init in a moment: not damage, and
		// not running yet for exec.
		found.Status = store.Starting
		return observation{st: found}, nil
	}
	if st == nil && readErr == nil && m.monitorRestoring(name, found.Monitor) {
		// A restore whose lodge was killed goes on: CRIU's tasks are
		// back, and the monitor records them once CRIU is done.
		found.Status = store.Starting
		return observation{st: found}, nil
	}
	found.StopSignal = m.kernelStopSignal(name, found.Init)
	if st != nil {
		found.RootfsMode = st.RootfsMode
	}
	what := fmt.Sprintf("its state file %s is missing", statePath)
	switch {
	case readErr != nil:
		what = readErr.Error()
	case st != nil:
		what = fmt.Sprintf("its state file %s names init pid %d, which is gone", statePath, st.Init.PID)
	}
	problem := fmt.Sprintf("%s, yet it runs (found by its cgroup): lodge stop %s and lodge delete --force %s work, lodge restart %s records it anew",
		what, name, name, name)
	return observation{st: found, fromKernel: true, problem: problem}, nil
}

// monitorRestoring tells whether mon is container name's monitor at work on a
// restore (lodge-monitor __monitor ROOT NAME restore DIR): until it goes
// idle, its command line says so.
func (m *Manager) monitorRestoring(name string, mon store.Process) bool {
	if !mon.Alive() {
		return false
	}
	cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(mon.PID) + "/cmdline")
	args := strings.Split(string(cmdline), "\x00")
	return len(args) > 5 && args[1] == "__monitor" && args[2] == m.store.Root && args[3] == name && args[4] == "restore"
}

// running returns the state of a running container or an error saying it is not.
func (m *Manager) running(name string) (*store.State, error) {
	st, err := m.liveState(name)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return nil, fmt.Errorf("container %q %w; start it first: lodge start %s", name, ErrNotRunning, name)
	}
	return st, nil
}

// runningInit is running, but refuses a container whose init is not running
// yet (STARTING: being set up, or rebooting), which exec and console could
// not enter. stop accepts it: its request waits for the monitor.
func (m *Manager) runningInit(name string) (*store.State, error) {
	st, err := m.running(name)
	if err == nil && (st.Status == store.Starting || !leftHostRoot(st.Init.PID)) {
		return nil, fmt.Errorf("container %q is still starting; try again in a moment", name)
	}
	return st, err
}

// leftHostRoot reports whether process pid no longer has this process's root
// directory. A container's first process calls pivot_root before it executes
// init; one still at the host's root is being set up, and a record naming it
// as init (rebuilt from the kernel while the state file is damaged, during a
// guest reboot) must not let exec join its namespaces, whose mounts are the
// host's. When it cannot tell (the process is gone), it says true and leaves
// the refusal to exec's own checks.
func leftHostRoot(pid int) bool {
	var proc, own unix.Stat_t
	if unix.Stat("/proc/"+strconv.Itoa(pid)+"/root/", &proc) != nil || unix.Stat("/", &own) != nil {
		return true
	}
	return proc.Dev != own.Dev || proc.Ino != own.Ino
}
