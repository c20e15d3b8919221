package cgstats

import (
	"fmt"
	"strconv"
	"strings"

	"lodge/config"
)

// CPU is a container's CPU placement, quota and usage.
type CPU struct {
	Cpuset []int  // CPUs it may run on, host numbering, ascending; the host's online CPUs when no cpuset applies
	Quota  uint64 // CPU time per Period, microseconds; Unlimited when none
	Period uint64 // microseconds

	User, System uint64 // CPU time used since the cgroup was made, nanoseconds
	// PerCPU is the time used on each host CPU (v1 cpuacct only; nil on
	// cgroup2, which accounts the total only).
	PerCPU map[int]CPUTime
}

// CPUTime is time used on one CPU, nanoseconds.
type CPUTime struct{ User, System uint64 }

// HostOnline is the file listing the host's online CPUs; a variable so that
// tests can point it at a copy.
var HostOnline = "/sys/devices/system/cpu/online"

// ReadCPU reads the cpuset, cpu and cpuacct controllers (v1) or their
// cgroup2 files.
func ReadCPU(cg Cgroups) (CPU, error) {
	c, err := ReadPlacement(cg)
	if err != nil {
		return c, err
	}
	return c, readUsage(cg, &c)
}

// ReadPlacement reads what decides which CPUs a container sees (cpuset and
// quota) and not its usage: enough for CPU counts and lists.
func ReadPlacement(cg Cgroups) (CPU, error) {
	c := CPU{Quota: Unlimited, Period: 100000}
	var err error
	if c.Cpuset, err = readCpuset(cg); err != nil {
		return c, err
	}
	return c, readQuota(cg, &c)
}

func readCpuset(cg Cgroups) ([]int, error) {
	var list string
	var err error
	if dir, ok := cg.v1Dir("cpuset"); ok {
		if list, err = readString(dir, "cpuset.effective_cpus"); err != nil {
			list, err = readString(dir, "cpuset.cpus")
		}
	} else if dir, ok := cg.v2Dir("cpuset.cpus.effective"); ok {
		list, err = readString(dir, "cpuset.cpus.effective")
	} else {
		list, err = readString("", HostOnline)
	}
	if err != nil {
		return nil, fmt.Errorf("cpuset: %w", err)
	}
	cpus, err := ParseList(list)
	if err != nil {
		return nil, fmt.Errorf("cpuset: %w", err)
	}
	if len(cpus) == 0 {
		// An empty effective set never runs a task; the parent's applies.
		if cpus, err = HostCPUs(); err != nil {
			return nil, err
		}
	}
	return cpus, nil
}

// HostCPUs lists the host's online CPUs (HostOnline).
func HostCPUs() ([]int, error) {
	s, err := readString("", HostOnline)
	if err != nil {
		return nil, err
	}
	return ParseList(s)
}

func readQuota(cg Cgroups, c *CPU) error {
	if dir, ok := cg.v1Dir("cpu"); ok {
		quota, err := readUint(dir, "cpu.cfs_quota_us")
		if err != nil {
			return nil // no CFS bandwidth control in this kernel
		}
		period, err := readUint(dir, "cpu.cfs_period_us")
		if err != nil || period == 0 {
			return fmt.Errorf("cpu: period: %v", err)
		}
		c.Quota, c.Period = quota, period
		return nil
	}
	if dir, ok := cg.v2Dir("cpu.max"); ok {
		s, err := readString(dir, "cpu.max")
		if err != nil {
			return err
		}
		f := strings.Fields(s)
		if len(f) != 2 {
			return fmt.Errorf("cpu.max: %q", s)
		}
		if f[0] != "max" {
			if c.Quota, err = strconv.ParseUint(f[0], 10, 64); err != nil {
				return fmt.Errorf("cpu.max: %q", s)
			}
		}
		if c.Period, err = strconv.ParseUint(f[1], 10, 64); err != nil || c.Period == 0 {
			return fmt.Errorf("cpu.max: %q", s)
		}
	}
	return nil
}

func readUsage(cg Cgroups, c *CPU) error {
	if dir, ok := cg.v1Dir("cpuacct"); ok {
		return readUsageV1(dir, c)
	}
	if dir, ok := cg.v2Dir("cpu.stat"); ok {
		stat, err := readKeyed(dir, "cpu.stat")
		if err != nil {
			return err
		}
		c.User, c.System = stat["user_usec"]*1000, stat["system_usec"]*1000
	}
	return nil
}

// readUsageV1 reads cpuacct.usage_all: a header, then "CPU USER SYSTEM" in
// nanoseconds per host CPU.
func readUsageV1(dir string, c *CPU) error {
	s, err := readString(dir, "cpuacct.usage_all")
	if err != nil {
		return readUsageV1Ticks(dir, c)
	}
	c.PerCPU = map[int]CPUTime{}
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		cpu, err1 := strconv.Atoi(f[0])
		user, err2 := strconv.ParseUint(f[1], 10, 64)
		system, err3 := strconv.ParseUint(f[2], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			continue // the header
		}
		c.PerCPU[cpu] = CPUTime{User: user, System: system}
		c.User += user
		c.System += system
	}
	return nil
}

// readUsageV1Ticks reads cpuacct.stat (USER_HZ ticks), on kernels without
// usage_all.
func readUsageV1Ticks(dir string, c *CPU) error {
	stat, err := readKeyed(dir, "cpuacct.stat")
	if err != nil {
		return err
	}
	const nsPerTick = 10_000_000
	c.User, c.System = stat["user"]*nsPerTick, stat["system"]*nsPerTick
	return nil
}

// ParseList parses a CPU list such as "0-3,8,10-11" (config.ParseCPUList:
// the kernel's format, sorted, no duplicates).
func ParseList(s string) ([]int, error) { return config.ParseCPUList(s) }
