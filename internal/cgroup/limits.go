package cgroup

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Config keys of the limits, named in error messages.
const (
	KeyMemory = "limits.memory"
	KeySwap   = "limits.swap"
	KeyCPU    = "limits.cpu"
	KeyCpuset = "limits.cpuset"
	KeyPids   = "limits.pids"
)

// cpuPeriod is the CFS period lodge uses, in microseconds (100 ms, the kernel default).
const cpuPeriod = 100000

// Limits are the resource limits of one container. The zero value means no
// limits: Apply writes the kernel's "unlimited" values for fields left zero.
type Limits struct {
	MemoryBytes int64   // 0 = unlimited
	SwapBytes   int64   // swap allowed on top of MemoryBytes; 0 = not limited, negative = no swap
	CPUQuota    float64 // in CPUs: 1.5 is 150 ms of CPU time per 100 ms; 0 = unlimited
	Cpuset      string  // CPUs the container may run on, e.g. "0-1,4"; "" = all of the parent's
	Pids        int64   // maximum number of tasks; 0 = unlimited
}

// Validate checks the values without looking at the host.
func (l Limits) Validate() error {
	var errs []error
	if l.MemoryBytes < 0 {
		errs = append(errs, fmt.Errorf("%s must not be negative (0 means unlimited)", KeyMemory))
	}
	if l.CPUQuota < 0 || math.IsNaN(l.CPUQuota) || math.IsInf(l.CPUQuota, 0) {
		errs = append(errs, fmt.Errorf("%s must be a positive number of CPUs (0 means unlimited)", KeyCPU))
	} else if l.CPUQuota > 0 && l.CPUQuota < 0.01 {
		errs = append(errs, fmt.Errorf("%s = %g is below the kernel's minimum of 0.01 CPU (1 ms per 100 ms)", KeyCPU, l.CPUQuota))
	} else if l.CPUQuota > 1<<20 {
		errs = append(errs, fmt.Errorf("%s = %g is more CPUs than any machine has", KeyCPU, l.CPUQuota))
	}
	if l.Cpuset != "" {
		if err := checkCPUList(l.Cpuset); err != nil {
			errs = append(errs, fmt.Errorf("%s = %q: %w", KeyCpuset, l.Cpuset, err))
		}
	}
	if l.Pids < 0 {
		errs = append(errs, fmt.Errorf("%s must not be negative (0 means unlimited)", KeyPids))
	}
	return errors.Join(errs...)
}

// checkCPUList checks the kernel's list syntax: "0-3,5,7-8".
func checkCPUList(s string) error {
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.ParseUint(lo, 10, 16)
		if err != nil {
			return fmt.Errorf("%q is not a CPU number or range (write e.g. 0-3,5)", part)
		}
		if !isRange {
			continue
		}
		b, err := strconv.ParseUint(hi, 10, 16)
		if err != nil || b < a {
			return fmt.Errorf("%q is not a CPU range (write e.g. 0-3)", part)
		}
	}
	return nil
}

// write is one value written to one control file to apply a limit.
type write struct {
	Controller string // the controller that provides File
	File       string // e.g. "memory.max"
	Value      string
	Key        string // the limit it implements, for messages
	Set        bool   // the limit is set: a host without the controller (or file) is an error
	Optional   bool   // the file may be absent (swap accounting off); skipped then unless Set
}

// renderV2 returns the cgroup v2 writes for l.
func renderV2(l Limits) []write {
	swap := "max"
	switch {
	case l.SwapBytes > 0:
		swap = strconv.FormatInt(l.SwapBytes, 10)
	case l.SwapBytes < 0:
		swap = "0"
	}
	cpu := "max " + strconv.Itoa(cpuPeriod)
	if q := quotaMicros(l.CPUQuota); q > 0 {
		cpu = fmt.Sprintf("%d %d", q, cpuPeriod)
	}
	return []write{
		{"memory", "memory.max", maxOr(l.MemoryBytes), KeyMemory, l.MemoryBytes != 0, false},
		{"memory", "memory.swap.max", swap, KeySwap, l.SwapBytes != 0, true},
		{"cpu", "cpu.max", cpu, KeyCPU, l.CPUQuota != 0, false},
		// An empty cpuset.cpus or cpuset.mems takes the parent's effective set.
		{"cpuset", "cpuset.cpus", l.Cpuset, KeyCpuset, l.Cpuset != "", false},
		{"cpuset", "cpuset.mems", "", KeyCpuset, false, false},
		{"pids", "pids.max", maxOr(l.Pids), KeyPids, l.Pids != 0, false},
	}
}

// v1State is what the v1 writes depend on besides the limits.
type v1State struct {
	ParentCpus, ParentMems string // the parent cgroup's cpuset.cpus and cpuset.mems
	Memsw                  int64  // the group's memory.memsw.limit_in_bytes now; -1 if unlimited or absent
}

// unlimitedV1 is what v1 reads back for "-1" (PAGE_COUNTER_MAX in bytes);
// any value at or above it counts as unlimited.
const unlimitedV1 = 1 << 62

// renderV1 returns the cgroup v1 writes for l, in the order they must be
// done. checkV1 tells whether l can be expressed on v1 at all.
func renderV1(l Limits, st v1State) []write {
	mem, memsw := v1Memory(l)
	memW := write{"memory", "memory.limit_in_bytes", strconv.FormatInt(mem, 10), KeyMemory, l.MemoryBytes != 0, false}
	swW := write{"memory", "memory.memsw.limit_in_bytes", strconv.FormatInt(memsw, 10), KeySwap, l.SwapBytes != 0, true}
	// memory <= memsw must hold after each write: raise memsw first when the
	// new memory limit is above the current memsw limit.
	memory := []write{memW, swW}
	if asV1Max(mem) > asV1Max(st.Memsw) {
		memory = []write{swW, memW}
	}
	quota := int64(-1)
	if q := quotaMicros(l.CPUQuota); q > 0 {
		quota = q
	}
	cpus := l.Cpuset
	if cpus == "" {
		cpus = st.ParentCpus
	}
	out := append(memory,
		write{"cpu", "cpu.cfs_period_us", strconv.Itoa(cpuPeriod), KeyCPU, false, false},
		write{"cpu", "cpu.cfs_quota_us", strconv.FormatInt(quota, 10), KeyCPU, l.CPUQuota != 0, false})
	// An empty v1 cpuset is no CPU at all, never "inherit": write none.
	if st.ParentMems != "" {
		out = append(out, write{"cpuset", "cpuset.mems", st.ParentMems, KeyCpuset, false, false})
	}
	if cpus != "" {
		out = append(out, write{"cpuset", "cpuset.cpus", cpus, KeyCpuset, l.Cpuset != "", false})
	}
	return append(out, write{"pids", "pids.max", maxOr(l.Pids), KeyPids, l.Pids != 0, false})
}

// checkV1 rejects memory limits that v1 cannot express: it limits memory
// plus swap together, so a swap limit needs a memory limit.
func checkV1(l Limits) error {
	if l.SwapBytes != 0 && l.MemoryBytes == 0 {
		return fmt.Errorf("%s needs %s on cgroup v1, which limits memory and swap together", KeySwap, KeyMemory)
	}
	if l.SwapBytes > 0 && l.SwapBytes > math.MaxInt64-l.MemoryBytes {
		return fmt.Errorf("%s + %s overflows", KeyMemory, KeySwap)
	}
	return nil
}

// v1Memory returns memory.limit_in_bytes and memory.memsw.limit_in_bytes,
// -1 meaning unlimited.
func v1Memory(l Limits) (mem, memsw int64) {
	mem, memsw = -1, -1
	if l.MemoryBytes > 0 {
		mem = l.MemoryBytes
	}
	if l.MemoryBytes > 0 && l.SwapBytes < 0 {
		memsw = mem
	} else if l.MemoryBytes > 0 && l.SwapBytes > 0 {
		memsw = mem + l.SwapBytes
	}
	return mem, memsw
}

func asV1Max(v int64) int64 {
	if v < 0 || v >= unlimitedV1 {
		return math.MaxInt64
	}
	return v
}

func quotaMicros(cpus float64) int64 { return int64(math.Round(cpus * cpuPeriod)) }

func maxOr(v int64) string {
	if v <= 0 {
		return "max"
	}
	return strconv.FormatInt(v, 10)
}
