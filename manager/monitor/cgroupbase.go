package monitor

import (
	"fmt"

	"lodge/config"
	"lodge/internal/cgroup"
)

// CgroupBase detects the host's cgroups and resolves the host config's
// cgroup base on them: where every lodge process (the CLI, monitors, a
// server) puts containers and monitors, whatever cgroup it runs in.
func CgroupBase(host *config.Host) (*cgroup.Base, error) {
	h, err := cgroup.DetectHost()
	if err != nil {
		return nil, err
	}
	if err := host.CheckCgroupKeys(h.Keys()); err != nil {
		return nil, err
	}
	b, err := h.Base(host.Cgroup.Parent, host.Cgroup.Parents)
	if err != nil {
		return nil, fmt.Errorf("%w (host config %s)", err, config.HostConfigPath())
	}
	return b, nil
}
