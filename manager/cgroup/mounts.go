package cgroup

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Mount is one cgroup filesystem the container's init mounts under
// /sys/fs/cgroup, after unshare(CLONE_NEWCGROUP) while in the group, so that
// it shows the group as its root. On v1 and hybrid hosts the mounts sit on a
// tmpfs at /sys/fs/cgroup that the caller mounts first; that tmpfs is not
// listed.
type Mount struct {
	Target   string   // relative to /sys/fs/cgroup: "" for pure v2 (cgroup2 directly there), "memory", "cpu,cpuacct", "systemd", "unified"
	FSType   string   // "cgroup" or "cgroup2"
	Data     string   // mount data: "memory", "cpu,cpuacct", "none,name=systemd", or "" for cgroup2
	Symlinks []string // names under /sys/fs/cgroup that point at Target, for co-mounted controllers: "cpu" and "cpuacct" for "cpu,cpuacct"
}

// InsideMounts is what the container's init must mount under /sys/fs/cgroup:
// the host's layout, each hierarchy rooted at the group.
func (g *Group) InsideMounts() []Mount { return g.host.InsideMounts() }

// InsideMounts is the host's cgroup layout as a container sees it: one
// cgroup2 mount on a unified host; on others, each v1 hierarchy in a directory
// named by its key (as systemd lays them out), plus "unified" on hybrid hosts.
func (h *Host) InsideMounts() []Mount {
	var out []Mount
	for _, hi := range h.Hierarchies {
		switch {
		case hi.Version == 2 && h.Mode == Unified:
			return []Mount{{Target: "", FSType: "cgroup2"}}
		case hi.Version == 2:
			out = append(out, Mount{Target: UnifiedKey, FSType: "cgroup2"})
		default:
			out = append(out, v1Mount(hi))
		}
	}
	return out
}

func v1Mount(hi Hierarchy) Mount {
	m := Mount{Target: hi.Key(), FSType: "cgroup"}
	opts := append([]string(nil), hi.Controllers...)
	if hi.Name != "" {
		opts = append(opts, "name="+hi.Name)
	}
	if len(hi.Controllers) == 0 {
		opts = append([]string{"none"}, opts...)
	}
	m.Data = strings.Join(opts, ",")
	if len(hi.Controllers) > 1 {
		m.Symlinks = append(m.Symlinks, hi.Controllers...)
	}
	return m
}

// ProcessCgroupProcsFiles returns the host paths of the cgroup.procs files of
// the cgroups process pid is in, one per hierarchy lodge uses: writing a pid
// to each moves that process next to pid (how `lodge exec` joins a running
// container's init).
func ProcessCgroupProcsFiles(pid int) ([]string, error) {
	h, err := DetectHost()
	if err != nil {
		return nil, err
	}
	return h.ProcessCgroupProcsFiles(pid)
}

// ProcessCgroupProcsFiles is the package function for a detected host.
func (h *Host) ProcessCgroupProcsFiles(pid int) ([]string, error) {
	cgs, err := readProcCgroup(strconv.Itoa(pid))
	if err != nil {
		return nil, fmt.Errorf("cgroups of process %d: %w", pid, err)
	}
	return h.procsFiles(cgs)
}

// procsFiles maps a process's /proc/PID/cgroup lines to cgroup.procs files.
func (h *Host) procsFiles(cgs []ProcCgroup) ([]string, error) {
	var out []string
	for _, hi := range h.Hierarchies {
		pc, ok := lineFor(cgs, hi)
		if !ok {
			return nil, fmt.Errorf("the process is in no cgroup of the %s hierarchy", hi.Key())
		}
		dir, ok := hi.Dir(pc.Path)
		if !ok {
			return nil, fmt.Errorf("the process's cgroup %s is not visible under %s", pc.Path, hi.Mountpoint)
		}
		out = append(out, filepath.Join(dir, "cgroup.procs"))
	}
	return out, nil
}

// lineFor finds the /proc/PID/cgroup line of hierarchy hi.
func lineFor(cgs []ProcCgroup, hi Hierarchy) (ProcCgroup, bool) {
	for _, pc := range cgs {
		if hi.Version == 2 {
			if pc.Unified() {
				return pc, true
			}
			continue
		}
		if !pc.Unified() && pc.Name == hi.Name && slices.Equal(pc.Controllers, hi.Controllers) {
			return pc, true
		}
	}
	return ProcCgroup{}, false
}
