package manager

import (
	"errors"
	"fmt"
	"time"

	"lodge/config"
	"lodge/manager/cgroup"
	"lodge/manager/store"
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
}

// Monitor column values.
const (
	monitorRunning = "running"
	monitorGone    = "gone" // the container runs on without its monitor
	monitorNone    = "-"
)

// List describes every container, sorted by name.
func (m *Manager) List() ([]Info, error) {
	names, err := m.store.Names()
	if err != nil {
		return nil, err
	}
	infos := make([]Info, 0, len(names))
	for _, name := range names {
		info, err := m.Info(name)
		if errors.Is(err, ErrInvalid) {
			info = m.brokenInfo(name, err)
		} else if err != nil {
			return nil, err
		}
		infos = append(infos, info)
	}
	return infos, nil
}

// brokenInfo describes a container whose configuration cannot be read: its
// runtime state is still the kernel's truth.
func (m *Manager) brokenInfo(name string, cause error) Info {
	info := Info{Name: name, State: store.Stopped, Monitor: monitorNone, Rootfs: m.store.RootfsPath(name), Error: cause.Error()}
	if st, err := m.liveState(name); err == nil && st != nil {
		m.addRuntime(&info, st)
	}
	return info
}

// Info describes one container. Its state comes from the kernel: a recorded
// init that is gone means STOPPED, whatever the state file says.
func (m *Manager) Info(name string) (Info, error) {
	if err := m.store.MustExist(name); err != nil {
		return Info{}, err
	}
	cfg, err := config.Load(m.store.ConfigPath(name))
	if err != nil {
		return Info{}, invalid(err)
	}
	info := Info{
		Name: name, State: store.Stopped, Monitor: monitorNone,
		Template: cfg.Source.Template, Image: cfg.Source.Image, Created: cfg.Source.Created,
		Rootfs: m.store.RootfsPath(name), Limits: limitsInfo(cfg),
	}
	if r, ok, err := m.allocator().Lookup(name); err == nil && ok {
		info.IDMap = r.String()
	}
	st, err := m.liveState(name)
	if err != nil || st == nil {
		return info, err
	}
	m.addRuntime(&info, st)
	return info, nil
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
	if frozen, err := cgroup.Open(st.Cgroups).Frozen(); err == nil && frozen {
		info.State = store.Frozen
	}
}

func limitsInfo(cfg *config.Container) LimitsInfo {
	l := LimitsInfo{CPU: cfg.Limits.CPU, Cpuset: cfg.Limits.Cpuset, Pids: cfg.Limits.Pids}
	if cfg.Limits.Memory > 0 {
		l.Memory = cfg.Limits.Memory.String()
	}
	return l
}

// liveState returns the recorded state of a container whose init is alive, or
// nil when it is stopped.
func (m *Manager) liveState(name string) (*store.State, error) {
	st, err := m.store.ReadState(name)
	if err != nil || st == nil {
		return nil, err
	}
	if !st.Init.Alive() {
		return nil, nil
	}
	return st, nil
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
	if err == nil && st.Status == store.Starting {
		return nil, fmt.Errorf("container %q is still starting; try again in a moment", name)
	}
	return st, err
}
