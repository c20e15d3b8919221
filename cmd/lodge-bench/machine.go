package main

import (
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// machineInfo describes where and with what the benchmark ran.
type machineInfo struct {
	Kernel   string
	CPUs     string
	Memory   string
	Cgroups  string
	Date     string
	Lodge    string
	LXC      string
	Go       string
	Duration time.Duration
	Load     string // load averages when the run began and ended
	Reclaim  string // proactive reclaim that can add noise (DAMON)
}

func describeMachine(b *bench) machineInfo {
	m := machineInfo{
		Kernel:  kernelVersion(),
		CPUs:    fmt.Sprintf("%d × %s", goruntime.NumCPU(), cpuModel()),
		Memory:  memTotal(),
		Cgroups: cgroupLayout(),
		Date:    time.Now().UTC().Format("2006-01-02 15:04 UTC"),
		Go:      goruntime.Version(),
		Reclaim: damonReclaim(),
	}
	m.Lodge, m.LXC = "unknown", "unknown"
	if b.run == nil {
		return m
	}
	if b.lodge != nil {
		m.Lodge = "`lodge version`: " + strings.TrimPrefix(b.lodge.version(), "lodge ") + ", " + gitCommit(b)
	}
	if b.lxc != nil {
		m.LXC = b.lxc.version()
	}
	return m
}

// loadAverage is the 1-minute load average from /proc/loadavg.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if fields := strings.Fields(string(data)); err == nil && len(fields) > 0 {
		return fields[0]
	}
	return "unknown"
}

// damonReclaim reports running DAMON contexts with a pageout scheme: the
// kernel then reclaims memory it finds cold, which can add page faults.
func damonReclaim() string {
	states, _ := filepath.Glob("/sys/kernel/mm/damon/admin/kdamonds/*/state")
	for _, state := range states {
		data, _ := os.ReadFile(state)
		if strings.TrimSpace(string(data)) != "on" {
			continue
		}
		actions, _ := filepath.Glob(filepath.Join(filepath.Dir(state), "contexts/*/schemes/*/action"))
		for _, a := range actions {
			if data, _ := os.ReadFile(a); strings.TrimSpace(string(data)) == "pageout" {
				return "DAMON runs with a pageout scheme (proactive reclaim of cold memory), a source of noise"
			}
		}
	}
	return ""
}

func kernelVersion() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return fmt.Sprintf("%s %s (%s)", unix.ByteSliceToString(u.Sysname[:]), unix.ByteSliceToString(u.Release[:]), unix.ByteSliceToString(u.Machine[:]))
}

func cpuModel() string {
	data, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func memTotal() string {
	v, err := readKeyValues("/proc/meminfo")
	if err != nil {
		return "unknown"
	}
	return fmt.Sprintf("%.1f GiB", float64(v["MemTotal"])/(1024*1024))
}

// cgroupLayout names the host's cgroup mode, as lodge distinguishes them.
func cgroupLayout() string {
	var st unix.Statfs_t
	if unix.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		return "cgroup v2 (unified)"
	}
	if unix.Statfs("/sys/fs/cgroup/unified", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		return "hybrid: cgroup v1 controllers, cgroup2 at /sys/fs/cgroup/unified"
	}
	return "cgroup v1"
}

// gitCommit names the commit lodge was built from (the working tree of the
// current directory, which `make bench` builds).
func gitCommit(b *bench) string {
	commit, err := b.run.output("git", "rev-parse", "--short=12", "HEAD")
	if err != nil {
		return "commit unknown"
	}
	s := "commit " + trimOutput(commit)
	if status, err := b.run.output("git", "status", "--porcelain", "--untracked-files=no"); err == nil && trimOutput(status) != "" {
		s += " with uncommitted changes in the working tree"
	}
	return s
}
