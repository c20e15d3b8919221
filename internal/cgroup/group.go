package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Group is one container's cgroup (or its monitor's): the directory
// BASE/NAME (BASE/.monitor/NAME) on every hierarchy of the host. Its methods
// hide whether those are cgroup v1, v2, or both.
type Group struct {
	host    *Host
	base    *Base // nil for a group found again with Open
	monitor bool  // a monitor's group: no limits, devices or delegation
	name    string
	dirs    []groupDir
	err     error // an invalid name
}

// groupDir is the group on one hierarchy.
type groupDir struct {
	h      Hierarchy
	parent string // host path of the directory holding the group
	path   string // host path of the group
}

// ownGroup returns group name below parentName in this process's own cgroup
// on every hierarchy (the package's tests keep their groups there).
func (h *Host) ownGroup(parentName, name string) *Group {
	if err := checkName(parentName); err != nil {
		return &Group{host: h, name: name, err: err}
	}
	b := &Base{host: h}
	for _, hi := range h.Hierarchies {
		b.dirs = append(b.dirs, baseDir{h: hi, cg: path.Join(hi.Own, parentName), path: filepath.Join(hi.OwnDir(), parentName)})
	}
	return b.Group(name)
}

// Open returns the group whose directories Paths returned earlier, as kept in
// a container's runtime state, so that a lodge process running from another
// cgroup than the one that created the group still finds it. Hierarchies are
// identified by their keys, checked against the host's when it can be detected.
func Open(paths map[string]string) *Group {
	host, err := DetectHost()
	if err != nil {
		host = &Host{}
	}
	return host.Open(paths)
}

// Open is cgroup.Open on a host detected earlier: a process that opens the
// groups of many containers (lodge list) detects the host once, not at every
// group (each detection parses mountinfo and the process's cgroups). h is
// not changed.
func (h *Host) Open(paths map[string]string) *Group {
	host := h
	if len(h.Hierarchies) == 0 {
		host = &Host{Mode: h.Mode, Unused: h.Unused} // filled from paths below
	}
	g := &Group{host: host}
	keys := slices.Sorted(maps.Keys(paths))
	for _, key := range keys {
		p := filepath.Clean(paths[key])
		hi, ok := host.hierarchy(key)
		if !ok {
			hi = inferHierarchy(key)
		}
		if hi.Version == 2 {
			// What the group itself got, whatever lodge's cgroup offers now.
			if ctrls, err := readV2Controllers(p); err == nil {
				hi.Controllers = ctrls
			}
		}
		g.name, g.monitor = filepath.Base(p), filepath.Base(filepath.Dir(p)) == MonitorDir
		g.dirs = append(g.dirs, groupDir{h: hi, parent: filepath.Dir(p), path: p})
	}
	if len(host.Hierarchies) == 0 {
		for _, d := range g.dirs {
			host.Hierarchies = append(host.Hierarchies, d.h)
		}
	}
	return g
}

// hierarchy returns the host's hierarchy with key key.
func (h *Host) hierarchy(key string) (Hierarchy, bool) {
	for _, hi := range h.Hierarchies {
		if hi.Key() == key {
			return hi, true
		}
	}
	return Hierarchy{}, false
}

// inferHierarchy describes a hierarchy the host did not report, from its key.
func inferHierarchy(key string) Hierarchy {
	if key == UnifiedKey {
		return Hierarchy{Version: 2}
	}
	return Hierarchy{Version: 1, Controllers: strings.Split(key, ",")}
}

func checkName(n string) error {
	switch {
	case n == "" || n == "." || n == "..":
		return fmt.Errorf("invalid cgroup name %q", n)
	case len(n) > 200:
		return fmt.Errorf("cgroup name %q is too long", n)
	case strings.ContainsAny(n, "/\n\x00"):
		return fmt.Errorf("cgroup name %q contains '/', a newline or NUL", n)
	}
	return nil
}

// Name is the container's name, the group's last path component.
func (g *Group) Name() string { return g.name }

// Paths maps each hierarchy's key ("memory", "cpu,cpuacct", "systemd",
// "unified", ...) to the group's host directory in it.
func (g *Group) Paths() map[string]string {
	m := make(map[string]string, len(g.dirs))
	for _, d := range g.dirs {
		m[d.h.Key()] = d.path
	}
	return m
}

// Exists reports whether the group's directory exists on any hierarchy.
func (g *Group) Exists() bool {
	return slices.ContainsFunc(g.dirs, func(d groupDir) bool { return exists(d.path) })
}

// dirFor returns the group's directory on the hierarchy providing controller c.
func (g *Group) dirFor(c string) (groupDir, bool) {
	for _, d := range g.dirs {
		if d.h.Has(c) {
			return d, true
		}
	}
	return groupDir{}, false
}

// unified returns the group's cgroup2 directory, if the host has cgroup2.
func (g *Group) unified() (groupDir, bool) {
	for _, d := range g.dirs {
		if d.h.Version == 2 {
			return d, true
		}
	}
	return groupDir{}, false
}

// AddProcess moves process pid into the group on every hierarchy.
func (g *Group) AddProcess(pid int) error {
	if g.err != nil {
		return g.err
	}
	for _, d := range g.dirs {
		if err := writeFile(filepath.Join(d.path, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
			return fmt.Errorf("add process %d to cgroup %s: %w", pid, d.path, err)
		}
	}
	return nil
}

// Procs returns the processes in the group and its descendants on any
// hierarchy, sorted, each once.
func (g *Group) Procs() ([]int, error) {
	seen := map[int]bool{}
	for _, d := range g.dirs {
		err := walkDirs(d.path, func(dir string) error {
			pids, err := readPids(filepath.Join(dir, "cgroup.procs"))
			for _, p := range pids {
				seen[p] = true
			}
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("list processes of cgroup %s: %w", g.name, err)
		}
	}
	out := make([]int, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	sort.Ints(out)
	return out, nil
}

// retryVanished runs step again while it fails because a directory vanished:
// another container's Destroy may remove the shared parent between our mkdir
// of it and of the group (ENOENT, or ENODEV for a file opened just before).
func retryVanished(step func() error) error {
	var err error
	for range 100 {
		if err = step(); !vanished(err) {
			return err
		}
	}
	return err
}

func vanished(err error) bool { return errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNoDevice) }
