// Package manager is lodge's container lifecycle: create, start, stop, exec,
// console, delete, list and configuration changes. The lodge CLI is a thin layer
// over it. Running containers are watched by their monitor (package monitor);
// every operation here also works from the kernel's view alone (pids, cgroups)
// when a monitor is gone.
package manager

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"lodge/config"
	"lodge/internal/cgroup"
	"lodge/internal/idmap"
	"lodge/internal/store"
	"lodge/manager/monitor"
	"lodge/templates"
)

// Manager operates on the containers of one lodge root.
type Manager struct {
	store     *store.Store
	host      *config.Host
	templates *templates.Registry
	self      string // the lodge binary, re-executed for monitors and exec
	// hostPath is the host config's file, passed on to monitors and
	// servers: two managers of one process (a migration's two ends in a
	// test) may have two.
	hostPath string
	// ReceiveIdle is how long a migration or a copy being received waits
	// for its source's next call before it is removed here
	// (incoming_idle.go); 0: DefaultReceiveIdle. Tests shorten it.
	ReceiveIdle time.Duration

	cgroupsOnce sync.Once
	cgroups     *cgroup.Base // the host's cgroup layout and lodge's base in it, detected once (cgroupBase)
	cgroupsErr  error
}

// cgroupBase detects the host's cgroup layout and resolves the host
// config's base on it on first use: a start asks for it several times (host
// facts, leftover groups, the kernel lookup, the monitor's group), and each
// detection parses mountinfo and the process's cgroups.
func (m *Manager) cgroupBase() (*cgroup.Base, error) {
	m.cgroupsOnce.Do(func() {
		m.cgroups, m.cgroupsErr = monitor.CgroupBase(m.host)
		if errors.Is(m.cgroupsErr, monitor.ErrCgroupConfig) {
			m.cgroupsErr = invalid(m.cgroupsErr)
		}
	})
	return m.cgroups, m.cgroupsErr
}

// cgroupHost is the host's cgroup layout, with the controllers the base offers.
func (m *Manager) cgroupHost() (*cgroup.Host, error) {
	b, err := m.cgroupBase()
	if err != nil {
		return nil, err
	}
	return b.Host(), nil
}

// openGroup returns a container's (or monitor's) group from the paths of its
// state, on the host layout this manager detected once (cgroup.Open would
// detect it again at every call: a list of 500 containers paid 500).
func (m *Manager) openGroup(paths map[string]string) *cgroup.Group {
	if host, err := m.cgroupHost(); err == nil {
		return host.Open(paths)
	}
	return cgroup.Open(paths)
}

// New opens the lodge root (creating it if needed) with the host configuration
// from config.HostConfigPath.
func New(root string) (*Manager, error) {
	if os.Geteuid() != 0 {
		return nil, ErrNotRoot
	}
	hostPath := config.HostConfigPath()
	host, err := config.LoadHost(hostPath)
	if err != nil {
		return nil, invalid(err)
	}
	st, err := store.Open(root)
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the lodge binary: %w", err)
	}
	return &Manager{store: st, host: host, templates: templates.Default(), self: self, hostPath: hostPath}, nil
}

// Root is the lodge root directory.
func (m *Manager) Root() string { return m.store.Root }

// Templates lists the available templates.
func (m *Manager) Templates() *templates.Registry { return m.templates }

func (m *Manager) allocator() *idmap.Allocator {
	pool := idmap.Pool{First: m.host.IDMap.First, Size: m.host.IDMap.Size, Count: m.host.IDMap.Count}
	a := idmap.Open(m.store.IDMapPath(), pool)
	a.InUse = m.processesOf
	return a
}

// Errors callers branch on (the CLI maps them to exit codes).
var (
	ErrNotRoot    = errors.New("lodge must run as root (uid 0) to create namespaces, cgroups and mounts; run it with sudo")
	ErrNotFound   = store.ErrNotFound
	ErrExists     = errors.New("already exists")
	ErrRunning    = errors.New("is running")
	ErrNotRunning = monitor.ErrNotRunning // also what a monitor answers about a container that stopped
	ErrInvalid    = errors.New("invalid input")

	// Refusals of a container's monitor, kept across its socket (see
	// manager/monitor/errors.go): the monitor is busy, speaks another
	// protocol version (a running container's monitor from another lodge),
	// or failed.
	ErrMonitorBusy     = monitor.ErrBusy
	ErrMonitorVersion  = monitor.ErrVersion
	ErrMonitorInternal = monitor.ErrInternal
)

// kindError marks an error as one of the kinds above (for the CLI's exit
// status) while keeping its message as is.
type kindError struct{ err, kind error }

func (e kindError) Error() string        { return e.err.Error() }
func (e kindError) Unwrap() error        { return e.err }
func (e kindError) Is(target error) bool { return target == e.kind }

// invalid marks bad user input (a name, a config value, a template).
func invalid(err error) error {
	if err == nil {
		return nil
	}
	return kindError{err, ErrInvalid}
}

// images is the image cache: the host config's images.dir, else ROOT/images.
func (m *Manager) images() *templates.Images {
	dir := m.host.Images.Dir
	if dir == "" {
		dir = m.store.ImagesDir()
	}
	return &templates.Images{Dir: dir}
}
