package config

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"lodge/internal/seccomp"
)

// keyError is a problem with the value of one key. Keeping the key apart
// from the message lets Load point at the key's line in the file.
type keyError struct {
	Key string // dotted TOML key, e.g. limits.cpu or defaults."limits.pids"
	Err error
}

func (e *keyError) Error() string { return e.Key + ": " + e.Err.Error() }
func (e *keyError) Unwrap() error { return e.Err }

func keyErrorf(key, format string, args ...any) error {
	return &keyError{Key: key, Err: fmt.Errorf(format, args...)}
}

// Smallest limits that make sense. The CPU bound is the kernel's: a quota of
// 1ms per 100ms period. The memory bound catches a forgotten unit
// ("memory = 512" is 512 bytes); no init boots in less than 1MiB.
const (
	minCPU    = 0.01
	minMemory = Size(1 << 20)
)

// Validate checks every key and returns all problems at once, joined, so a
// user fixes them in one round. Each check is listed with its key in the
// registry (keys.go).
func (c *Container) Validate() error {
	errs := []error{c.checkVersion(), checkNICs(c), checkProxies(c)}
	for _, key := range keyRegistry {
		if key.check != nil {
			errs = append(errs, key.check(c))
		}
	}
	return errors.Join(errs...)
}

func (c *Container) checkVersion() error {
	if c.Version != CurrentVersion {
		return keyErrorf("version", "%d is not supported; this lodge writes version = %d", c.Version, CurrentVersion)
	}
	return nil
}

func checkMemory(c *Container) error {
	memory := c.Limits.Memory
	switch {
	case memory < 0:
		return keyErrorf("limits.memory", "%d is negative; use a size like 512MiB, or 0 for no limit", int64(memory))
	case memory > 0 && memory < minMemory:
		return keyErrorf("limits.memory", "%d bytes is too small to boot; did you forget the unit? use a size like 512MiB, or 0 for no limit", int64(memory))
	}
	return nil
}

// minDisk catches a forgotten unit ("disk = 200" is 200 bytes): no root
// filesystem fits in less than 1MiB.
const minDisk = Size(1 << 20)

func checkDisk(c *Container) error {
	disk := c.Limits.Disk
	switch {
	case disk < 0:
		return keyErrorf("limits.disk", "%d is negative; use a size like 10GiB, or 0 for no limit", int64(disk))
	case disk > 0 && disk < minDisk:
		return keyErrorf("limits.disk", "%d bytes is too small for a root filesystem; did you forget the unit? use a size like 10GiB, or 0 for no limit", int64(disk))
	}
	return nil
}

func checkSwap(c *Container) error {
	swap := c.Limits.Swap
	switch {
	case swap < 0:
		return keyErrorf("limits.swap", "%d is negative; use a size like 1GiB, or 0 for no swap limit", int64(swap))
	case swap > 0 && c.Limits.Memory == 0:
		return keyErrorf("limits.swap", "%s is swap on top of limits.memory, which is not set; set limits.memory too, or set limits.swap to 0", swap)
	case swap > 0 && c.Limits.Memory > 0 && swap > math.MaxInt64-c.Limits.Memory:
		// cgroup v1 limits memory and swap together, as their sum.
		return keyErrorf("limits.swap", "%s plus limits.memory %s is more than the largest size, %d bytes; lower one of them", swap, c.Limits.Memory, int64(math.MaxInt64))
	}
	return nil
}

func checkCPU(c *Container) error {
	cpu := c.Limits.CPU
	text := strconv.FormatFloat(cpu, 'g', -1, 64)
	switch {
	case math.IsNaN(cpu) || math.IsInf(cpu, 0):
		return keyErrorf("limits.cpu", "%s is not a number of CPUs; use a number like 1.5, or 0 for no limit", text)
	case cpu < 0:
		return keyErrorf("limits.cpu", "%s is negative; use a number of CPUs like 1.5, or 0 for no limit", text)
	case cpu > 0 && cpu < minCPU:
		return keyErrorf("limits.cpu", "%s is below the smallest quota of %g CPUs; use a number of CPUs like 1.5, or 0 for no limit", text, minCPU)
	case cpu > maxCPU+1:
		return keyErrorf("limits.cpu", "%s is more CPUs than Linux supports (%d); use a number of CPUs like 1.5, or 0 for no limit", text, maxCPU+1)
	}
	return nil
}

func checkCpuset(c *Container) error {
	// The kernel takes no blanks inside the list.
	if strings.ContainsFunc(c.Limits.Cpuset, unicode.IsSpace) {
		return keyErrorf("limits.cpuset", `%q has blanks in it; write the list without them, e.g. "0-1" or "0,2"`, c.Limits.Cpuset)
	}
	if _, err := ParseCPUList(c.Limits.Cpuset); err != nil {
		return keyErrorf("limits.cpuset", `%q is not a CPU list (%v); use e.g. "0-1" or "0,2"`, c.Limits.Cpuset, err)
	}
	return nil
}

func checkPids(c *Container) error {
	if c.Limits.Pids < 0 {
		return keyErrorf("limits.pids", "%d is negative; use a number of tasks like 1024, or 0 for no limit", c.Limits.Pids)
	}
	return nil
}

func checkCommand(c *Container) error {
	command := c.Init.Command
	switch {
	case len(command) == 0:
		return keyErrorf("init.command", "is empty; set the init program, e.g. %s", defaultInitPath)
	case !filepath.IsAbs(command[0]):
		return keyErrorf("init.command", "%q is not an absolute path; start with the full path of the init program, e.g. %s", command[0], defaultInitPath)
	case slices.ContainsFunc(command, func(arg string) bool { return strings.ContainsRune(arg, 0) }):
		return keyErrorf("init.command", "contains a NUL byte, which no program argument can hold; remove it")
	}
	return nil
}

func checkStopSignal(c *Container) error {
	if c.Init.StopSignal == "" {
		return nil // chosen from the init at stop time
	}
	if _, err := ParseSignal(c.Init.StopSignal); err != nil {
		return &keyError{Key: "init.stop_signal", Err: err}
	}
	return nil
}

func checkStopTimeout(c *Container) error {
	timeout := c.Init.StopTimeout
	switch {
	case timeout < 0:
		return keyErrorf("init.stop_timeout", "%s is negative; use a duration like 30s", timeout)
	case timeout == 0:
		return keyErrorf("init.stop_timeout", "0s gives init no time to shut down; use a duration like 30s (lodge stop --force kills at once)")
	}
	return nil
}

func checkShift(c *Container) error {
	switch c.Rootfs.Shift {
	case ShiftAuto, ShiftIDMap, ShiftChown:
		return nil
	}
	return keyErrorf("rootfs.shift", "%q must be one of %s, %s, %s", c.Rootfs.Shift, ShiftAuto, ShiftIDMap, ShiftChown)
}

// checkSyscallNames accepts system call names in the kernel's spelling
// (lower case letters, digits and underscores, like open_by_handle_at) that
// the seccomp filter knows for this architecture: a typo would otherwise
// only show at the next start, or deny nothing.
func checkSyscallNames(key string, names []string) error {
	for _, name := range names {
		valid := name != ""
		for _, r := range name {
			valid = valid && (r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_')
		}
		if !valid {
			return keyErrorf(key, "%q is not a system call name; write names like open_by_handle_at, separated by spaces", name)
		}
	}
	if err := seccomp.CheckNames(names); err != nil {
		return keyErrorf(key, "%v", err)
	}
	return nil
}

// checkSyscallConflicts refuses a name both allowed and denied: the filter
// would deny it, which is probably not what the allow was for.
// Validate checks every key, so the allow key's check covers setting either.
func checkSyscallConflicts(key string, s Syscalls) error {
	for _, name := range s.Allow {
		if slices.Contains(s.Deny, name) {
			return keyErrorf(key, "%s is also in security.syscalls.deny; remove it from one of them", name)
		}
	}
	return nil
}

// checkBootAfter checks the names one by one; whether they are containers,
// and whether the lists make a cycle, only the manager can tell (it sees
// every container).
func checkBootAfter(c *Container) error {
	for i, name := range c.Boot.After {
		if err := ValidateName(name); err != nil {
			return keyErrorf("boot.after", "%v", err)
		}
		if slices.Contains(c.Boot.After[:i], name) {
			return keyErrorf("boot.after", "names %s twice; name it once", name)
		}
	}
	return nil
}

func checkReadyCommand(c *Container) error {
	if slices.ContainsFunc(c.Boot.ReadyCommand, func(arg string) bool { return strings.ContainsRune(arg, 0) }) {
		return keyErrorf("boot.ready_command", "contains a NUL byte, which no program argument can hold; remove it")
	}
	return nil
}

func checkReadyTimeout(c *Container) error {
	switch timeout := c.Boot.ReadyTimeout; {
	case timeout == nil:
		return nil
	case *timeout < 0:
		return keyErrorf("boot.ready_timeout", "%s is negative; use a duration like 2m", *timeout)
	case *timeout == 0:
		return keyErrorf("boot.ready_timeout", "0s gives the container no time to be ready; use a duration like 2m")
	}
	return nil
}

func checkHostShutdown(c *Container) error {
	switch c.Boot.HostShutdown {
	case "", HostShutdownStop, HostShutdownCheckpoint:
		return nil
	}
	return keyErrorf("boot.host_shutdown", "%q must be %s or %s", c.Boot.HostShutdown, HostShutdownStop, HostShutdownCheckpoint)
}
