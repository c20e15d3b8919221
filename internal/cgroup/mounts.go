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

// Placement says how a new process joins a set of cgroups without a
// whole-process migration. Writing a pid to cgroup.procs takes the kernel's
// global threadgroup lock for writing, which waits for an RCU grace period
// (7-13 ms on the test VM) unless another migration ran just before. Two paths
// avoid it: a single-threaded process that writes "0" to a v1 "tasks" file moves
// only its own thread and skips that lock; and clone3 with CLONE_INTO_CGROUP
// creates a process directly in a cgroup2 cgroup.
type Placement struct {
	Tasks   []string // v1 hierarchies: host paths of the "tasks" files to write "0" to
	Unified string   // cgroup2: host path of the cgroup directory for CLONE_INTO_CGROUP; "" on v1-only hosts
}

// ProcessPlacement returns the Placement of the cgroups process pid is in
// (how `lodge exec` joins a running container's init).
func ProcessPlacement(pid int) (Placement, error) {
	h, err := DetectHost()
	if err != nil {
		return Placement{}, err
	}
	return h.ProcessPlacement(pid)
}

// ProcessPlacement is the package function for a detected host.
func (h *Host) ProcessPlacement(pid int) (Placement, error) {
	cgs, err := readProcCgroup(strconv.Itoa(pid))
	if err != nil {
		return Placement{}, fmt.Errorf("cgroups of process %d: %w", pid, err)
	}
	return h.placement(cgs)
}

// placement maps a process's /proc/PID/cgroup lines to a Placement.
func (h *Host) placement(cgs []ProcCgroup) (Placement, error) {
	var p Placement
	for _, hi := range h.Hierarchies {
		pc, ok := lineFor(cgs, hi)
		if !ok {
			return Placement{}, fmt.Errorf("the process is in no cgroup of the %s hierarchy", hi.Key())
		}
		dir, ok := hi.Dir(pc.Path)
		if !ok {
			return Placement{}, fmt.Errorf("the process's cgroup %s is not visible under %s", pc.Path, hi.Mountpoint)
		}
		if hi.Version == 2 {
			p.Unified = dir
		} else {
			p.Tasks = append(p.Tasks, filepath.Join(dir, "tasks"))
		}
	}
	return p, nil
}

// Placement returns the Placement of the group itself.
func (g *Group) Placement() Placement {
	var p Placement
	for _, d := range g.dirs {
		if d.h.Version == 2 {
			p.Unified = d.path
		} else {
			p.Tasks = append(p.Tasks, filepath.Join(d.path, "tasks"))
		}
	}
	return p
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
