package render

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"lodge/lxcfs/cgstats"
)

// Times is what /proc/stat and /proc/uptime are computed from.
type Times struct {
	CPU       cgstats.CPU
	QuotaView bool
	Started   time.Time // the container's init started
	Now       time.Time
	Running   int // runnable tasks (procs_running)
	Blocked   int // tasks in uninterruptible sleep (procs_blocked)
}

// userHZ is the unit of /proc/stat times (USER_HZ, fixed at 100).
const userHZ = 100

const nsPerTick = uint64(time.Second) / userHZ

// cpuTicks is one visible CPU's time since the container started, in ticks.
type cpuTicks struct{ User, System, Idle uint64 }

// perCPU splits the container's CPU time over its visible CPUs: per host
// CPU where the kernel accounts it (v1 cpuacct) and the view is the cpuset,
// else evenly. Idle is the rest of the uptime, so that user + system + idle
// of each CPU is the container's uptime and /proc/uptime's idle is their sum.
func perCPU(t Times) []cpuTicks {
	visible := VisibleCPUs(t.CPU, t.QuotaView)
	up := uptimeTicks(t)
	out := make([]cpuTicks, len(visible))
	n := uint64(len(visible))
	for i, hostCPU := range visible {
		var user, system uint64
		if t.CPU.PerCPU != nil && len(visible) == len(t.CPU.Cpuset) {
			used := t.CPU.PerCPU[hostCPU]
			user, system = used.User/nsPerTick, used.System/nsPerTick
		} else {
			user, system = t.CPU.User/nsPerTick/n, t.CPU.System/nsPerTick/n
		}
		// Time used before the start (a cgroup reused) cannot exceed
		// the uptime of a CPU.
		user = min(user, up)
		system = min(system, up-user)
		out[i] = cpuTicks{User: user, System: system, Idle: up - user - system}
	}
	return out
}

func uptimeTicks(t Times) uint64 {
	d := t.Now.Sub(t.Started)
	if d < 0 {
		return 0
	}
	return uint64(d) / nsPerTick
}

// Uptime renders /proc/uptime: seconds since the container started, and the
// idle time of its CPUs added up (as the kernel does for the host).
func Uptime(t Times) string {
	var idle uint64
	for _, c := range perCPU(t) {
		idle += c.Idle
	}
	up := uptimeTicks(t)
	return fmt.Sprintf("%d.%02d %d.%02d\n", up/userHZ, up%userHZ, idle/userHZ, idle%userHZ)
}

// Stat renders /proc/stat: the cpu lines of the visible CPUs from the
// container's CPU time, btime from its start, procs_running and
// procs_blocked from its tasks; the rest (interrupts, context switches)
// stays the host's, as the kernel does not account it per cgroup.
func Stat(host string, t Times) string {
	cpus := perCPU(t)
	var total cpuTicks
	for _, c := range cpus {
		total.User += c.User
		total.System += c.System
		total.Idle += c.Idle
	}
	var sb strings.Builder
	sb.WriteString(statLine("cpu ", total))
	for i, c := range cpus {
		sb.WriteString(statLine("cpu"+strconv.Itoa(i), c))
	}
	for _, line := range strings.Split(strings.TrimRight(host, "\n"), "\n") {
		key, _, _ := strings.Cut(line, " ")
		switch {
		case strings.HasPrefix(key, "cpu"):
			continue
		case key == "btime":
			line = "btime " + strconv.FormatInt(t.Started.Unix(), 10)
		case key == "procs_running":
			line = "procs_running " + strconv.Itoa(max(t.Running, 1)) // the reader runs
		case key == "procs_blocked":
			line = "procs_blocked " + strconv.Itoa(t.Blocked)
		}
		sb.WriteString(line)
		sb.WriteByte('\n')
	}
	return sb.String()
}

// statLine formats user nice system idle iowait irq softirq steal guest
// guest_nice, as the kernel does.
func statLine(name string, c cpuTicks) string {
	return fmt.Sprintf("%s %d 0 %d %d 0 0 0 0 0 0\n", name, c.User, c.System, c.Idle)
}
