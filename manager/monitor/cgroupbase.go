package monitor

import (
	"errors"
	"fmt"

	"lodge/config"
	"lodge/internal/cgroup"
)

// ErrCgroupConfig marks a host config whose cgroup base does not fit this
// host: a cgroup.parents key naming no hierarchy, a path the process
// cannot reach.
var ErrCgroupConfig = errors.New("the host config's cgroup base does not fit this host")

// CgroupBase detects the host's cgroups and resolves the host config's
// cgroup base on them: where every lodge process (the CLI, monitors, a
// server) puts containers and monitors, whatever cgroup it runs in.
func CgroupBase(host *config.Host) (*cgroup.Base, error) {
	h, err := cgroup.DetectHost()
	if err != nil {
		return nil, err
	}
	if err := host.CheckCgroupKeys(h.Keys()); err != nil {
		return nil, kindError{err, ErrCgroupConfig}
	}
	b, err := h.Base(host.Cgroup.Parent, host.Cgroup.Parents)
	if err != nil {
		return nil, kindError{fmt.Errorf("%w (host config %s)", err, config.HostConfigPath()), ErrCgroupConfig}
	}
	return b, nil
}

// kindError marks err as one of a kind while keeping its message as is.
type kindError struct{ err, kind error }

func (e kindError) Error() string        { return e.err.Error() }
func (e kindError) Unwrap() error        { return e.err }
func (e kindError) Is(target error) bool { return target == e.kind }
