package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"lodge/internal/rawfile"
)

// Mode is how the host mounts its cgroup hierarchies.
type Mode int

const (
	// Unified is a pure cgroup v2 host: one cgroup2 hierarchy at /sys/fs/cgroup.
	Unified Mode = iota + 1
	// Hybrid has the controllers on cgroup v1 hierarchies and a cgroup2
	// hierarchy without them (systemd mounts it at /sys/fs/cgroup/unified).
	Hybrid
	// Legacy has cgroup v1 hierarchies only.
	Legacy
)

func (m Mode) String() string {
	switch m {
	case Unified:
		return "unified"
	case Hybrid:
		return "hybrid"
	case Legacy:
		return "legacy"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// UnifiedKey is the key of the cgroup2 hierarchy in Paths and Hierarchy.Key.
const UnifiedKey = "unified"

// Hierarchy is one mounted cgroup hierarchy as this process sees it.
type Hierarchy struct {
	Version     int      // 1 or 2
	Controllers []string // v1: the hierarchy's controllers; v2: those in Own's cgroup.controllers
	Name        string   // v1 named hierarchy, e.g. "systemd" for name=systemd
	Mountpoint  string   // host mountpoint, e.g. /sys/fs/cgroup/memory
	Root        string   // the cgroup mounted there (mountinfo's root), usually "/"
	Own         string   // this process's cgroup in the hierarchy, from /proc/self/cgroup
}

// Key names the hierarchy: "unified" for cgroup2, the controllers joined by
// commas for v1 ("memory", "cpu,cpuacct"), or the name of a named v1
// hierarchy ("systemd").
func (h Hierarchy) Key() string {
	switch {
	case h.Version == 2:
		return UnifiedKey
	case len(h.Controllers) > 0:
		return strings.Join(h.Controllers, ",")
	}
	return h.Name
}

// Has reports whether the hierarchy offers controller c.
func (h Hierarchy) Has(c string) bool { return slices.Contains(h.Controllers, c) }

// Dir is the host directory of cgroup cg (a path like /lodge/web1, relative
// to the hierarchy's root as /proc/PID/cgroup shows it), and false when cg is
// not below the mounted root.
func (h Hierarchy) Dir(cg string) (string, bool) {
	cg = path.Clean("/" + cg)
	root := path.Clean("/" + h.Root)
	rel := cg
	if root != "/" {
		if cg != root && !strings.HasPrefix(cg, root+"/") {
			return "", false
		}
		rel = strings.TrimPrefix(cg, root)
	}
	return filepath.Join(h.Mountpoint, rel), true
}

// OwnDir is the host directory of this process's cgroup in the hierarchy.
func (h Hierarchy) OwnDir() string {
	d, _ := h.Dir(h.Own)
	return d
}

// Host is the cgroup layout of this machine, detected once.
type Host struct {
	Mode        Mode
	Hierarchies []Hierarchy // v1 hierarchies sorted by key, then cgroup2 if mounted
	Unused      []string    // keys of hierarchies the process is in that lodge leaves alone (not mounted; v1 named ones on a unified host)
}

// Keys lists the keys of every hierarchy this process is in, used or not:
// what a host config's cgroup.parents may name.
func (h *Host) Keys() []string {
	var keys []string
	for _, hi := range h.Hierarchies {
		keys = append(keys, hi.Key())
	}
	keys = append(keys, h.Unused...)
	sort.Strings(keys)
	return slices.Compact(keys)
}

// Unified returns the cgroup2 hierarchy, if the host mounts one.
func (h *Host) Unified() (Hierarchy, bool) {
	for _, hi := range h.Hierarchies {
		if hi.Version == 2 {
			return hi, true
		}
	}
	return Hierarchy{}, false
}

// Controllers lists the controllers available on any hierarchy, sorted.
func (h *Host) Controllers() []string {
	var out []string
	for _, hi := range h.Hierarchies {
		out = append(out, hi.Controllers...)
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// DetectHost reads /proc/self/mountinfo and /proc/self/cgroup (and the
// cgroup.controllers of this process's cgroup2 group).
func DetectHost() (*Host, error) {
	mf, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("detect cgroups: %w", err)
	}
	defer mf.Close()
	mounts, err := ParseMountinfo(mf)
	if err != nil {
		return nil, fmt.Errorf("detect cgroups: %w", err)
	}
	self, err := readProcCgroup("self")
	if err != nil {
		return nil, fmt.Errorf("detect cgroups: %w", err)
	}
	h, err := assembleHost(mounts, self, readV2Controllers)
	if err != nil {
		return nil, fmt.Errorf("detect cgroups: %w", err)
	}
	return h, nil
}

func readProcCgroup(pid string) ([]ProcCgroup, error) {
	f, err := os.Open("/proc/" + pid + "/cgroup")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseProcCgroup(f)
}

func readV2Controllers(dir string) ([]string, error) {
	data, err := rawfile.Read(filepath.Join(dir, "cgroup.controllers"))
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(data)), nil
}

// assembleHost matches the process's cgroups with the mounted hierarchies.
// readControllers returns the controllers listed in a cgroup2 directory.
// Hierarchies that are not mounted are left out. On a unified host, v1 named
// hierarchies (a name=systemd mounted for old guests) are left out too: lodge
// puts containers on cgroup2 only there.
func assembleHost(mounts []MountInfo, self []ProcCgroup, readControllers func(dir string) ([]string, error)) (*Host, error) {
	var v1 []Hierarchy
	var v2 *Hierarchy
	var unused []string
	for _, pc := range self {
		if strings.HasPrefix(pc.Path, "/..") {
			return nil, fmt.Errorf("this process's cgroup %q (hierarchy %d) is outside its cgroup namespace", pc.Path, pc.ID)
		}
		m, ok := findMount(mounts, pc)
		if !ok {
			unused = append(unused, pc.Key())
			continue
		}
		hi := Hierarchy{Version: 1, Controllers: pc.Controllers, Name: pc.Name, Mountpoint: m.Mountpoint, Root: m.Root, Own: pc.Path}
		if !pc.Unified() {
			v1 = append(v1, hi)
			continue
		}
		hi.Version, hi.Controllers = 2, nil
		ctrls, err := readControllers(hi.OwnDir())
		if err != nil {
			return nil, fmt.Errorf("read controllers of this process's cgroup2 group: %w", err)
		}
		hi.Controllers = ctrls
		v2 = &hi
	}
	h, err := newHost(v1, v2)
	if err != nil {
		return nil, err
	}
	h.Unused = append(h.Unused, unused...)
	sort.Strings(h.Unused)
	return h, nil
}

func newHost(v1 []Hierarchy, v2 *Hierarchy) (*Host, error) {
	withControllers := slices.ContainsFunc(v1, func(h Hierarchy) bool { return len(h.Controllers) > 0 })
	h := &Host{}
	switch {
	case withControllers && v2 != nil:
		h.Mode = Hybrid
	case withControllers:
		h.Mode = Legacy
	case v2 != nil:
		h.Mode = Unified
		for _, hi := range v1 {
			h.Unused = append(h.Unused, hi.Key())
		}
		v1 = nil
	default:
		return nil, errors.New("no cgroup hierarchy is mounted (looked for cgroup and cgroup2 mounts in /proc/self/mountinfo)")
	}
	sort.Slice(v1, func(i, j int) bool { return v1[i].Key() < v1[j].Key() })
	h.Hierarchies = v1
	if v2 != nil {
		h.Hierarchies = append(h.Hierarchies, *v2)
	}
	return h, nil
}

// findMount returns the mount of pc's hierarchy through which pc's cgroup is
// reachable, preferring mounts under /sys/fs/cgroup.
func findMount(mounts []MountInfo, pc ProcCgroup) (MountInfo, bool) {
	var found []MountInfo
	for _, m := range mounts {
		if !mountIsHierarchy(m, pc) {
			continue
		}
		if _, ok := (Hierarchy{Mountpoint: m.Mountpoint, Root: m.Root}).Dir(pc.Path); ok {
			found = append(found, m)
		}
	}
	if len(found) == 0 {
		return MountInfo{}, false
	}
	for _, m := range found {
		if strings.HasPrefix(m.Mountpoint, "/sys/fs/cgroup") {
			return m, true
		}
	}
	return found[0], true
}

func mountIsHierarchy(m MountInfo, pc ProcCgroup) bool {
	if pc.Unified() {
		return m.FSType == "cgroup2"
	}
	if m.FSType != "cgroup" {
		return false
	}
	if pc.Name != "" && !slices.Contains(m.SuperOptions, "name="+pc.Name) {
		return false
	}
	for _, c := range pc.Controllers {
		if !slices.Contains(m.SuperOptions, c) {
			return false
		}
	}
	return true
}
