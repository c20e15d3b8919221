package config

import (
	"errors"
	"slices"
	"strconv"
)

// HostFacts is what validation needs to know about the machine a container
// runs on. The manager reads it from the host; config itself never looks,
// so its checks stay pure and tests make the facts up.
type HostFacts struct {
	// CPUs are the CPUs containers may run on (those online); nil if unknown.
	CPUs []int
	// Controllers are the cgroup controllers lodge can use for containers;
	// nil if unknown.
	Controllers []string
}

// ValidateOn checks everything Validate checks, everything CheckHost
// checks, and values that are valid but mean nothing on this host: what
// `lodge config set` and `lodge create` refuse before anything is saved.
func (c *Container) ValidateOn(h HostFacts) error {
	return errors.Join(c.Validate(), c.CheckHost(h), c.checkCPUOn(h))
}

// CheckHost returns what makes a valid configuration fail to start on this
// host: CPUs it does not have, limits whose cgroup controller it lacks.
// `lodge start` checks this much.
func (c *Container) CheckHost(h HostFacts) error {
	return errors.Join(c.checkCpusetOn(h), c.checkControllersOn(h))
}

func (c *Container) checkCpusetOn(h HostFacts) error {
	if h.CPUs == nil {
		return nil
	}
	want, err := ParseCPUList(c.Limits.Cpuset)
	if err != nil {
		return nil // Validate reports it
	}
	for _, cpu := range want {
		if !slices.Contains(h.CPUs, cpu) {
			return keyErrorf("limits.cpuset", "CPU %d is not online on this host (online: %s); use CPUs from %s, or leave limits.cpuset empty for all",
				cpu, FormatCPUList(h.CPUs), FormatCPUList(h.CPUs))
		}
	}
	return nil
}

// checkCPUOn refuses a CPU quota above the host's CPU count: it would limit
// nothing, and is most likely a typo (1e308, 150 for 1.5).
func (c *Container) checkCPUOn(h HostFacts) error {
	if len(h.CPUs) == 0 || c.Limits.CPU <= float64(len(h.CPUs)) {
		return nil
	}
	return keyErrorf("limits.cpu", "%s CPUs is more than this host has (%d CPUs); use at most %d, or 0 for no limit",
		strconv.FormatFloat(c.Limits.CPU, 'g', -1, 64), len(h.CPUs), len(h.CPUs))
}

// controllerOf names the cgroup controller each limit needs.
var controllerOf = []struct {
	key, controller string
	set             func(Limits) bool
}{
	{"limits.memory", "memory", func(l Limits) bool { return l.Memory != 0 }},
	{"limits.swap", "memory", func(l Limits) bool { return l.Swap != 0 }},
	{"limits.cpu", "cpu", func(l Limits) bool { return l.CPU != 0 }},
	{"limits.cpuset", "cpuset", func(l Limits) bool { return l.Cpuset != "" }},
	{"limits.pids", "pids", func(l Limits) bool { return l.Pids != 0 }},
}

func (c *Container) checkControllersOn(h HostFacts) error {
	if h.Controllers == nil {
		return nil
	}
	var errs []error
	for _, need := range controllerOf {
		if need.set(c.Limits) && !slices.Contains(h.Controllers, need.controller) {
			errs = append(errs, keyErrorf(need.key, "needs the %s cgroup controller, which this host does not offer lodge; set %s to 0 (no limit), or enable the controller",
				need.controller, need.key))
		}
	}
	return errors.Join(errs...)
}
