package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// MonitorDir is the cgroup below the base that holds the monitors, one
// group each (BASE/.monitor/NAME). Container names start with a letter, so
// it never clashes with a container's group; a sibling of the containers'
// groups rather than a child keeps cgroup v2's no-internal-process rule: the
// container's group is delegated to its root, whose systemd enables
// controllers in it, so no other process may live there.
const MonitorDir = ".monitor"

// Base is where a host's containers live: one cgroup per hierarchy, fixed by
// the host config (cgroup.parent, cgroup.parents) and the same for every
// lodge process whatever cgroup it runs in. Containers go to BASE/NAME,
// their monitors to BASE/.monitor/NAME.
type Base struct {
	host *Host // the detected host; its cgroup2 controllers are those the base offers
	dirs []baseDir
}

// baseDir is the base on one hierarchy.
type baseDir struct {
	h    Hierarchy
	cg   string // the base's cgroup path, as /proc/PID/cgroup shows it
	path string // its host directory
}

// Base resolves the base on each of the host's hierarchies: parents[key] if
// given, else parent. Each must be an absolute, clean cgroup path other than
// the root, visible through the hierarchy's mount. Nothing is created until
// a group is.
func (h *Host) Base(parent string, parents map[string]string) (*Base, error) {
	host := *h
	host.Hierarchies = slices.Clone(h.Hierarchies)
	b := &Base{host: &host}
	for i, hi := range host.Hierarchies {
		cg, ok := parents[hi.Key()]
		if !ok {
			cg = parent
		}
		d, err := resolveBase(hi, cg)
		if err != nil {
			return nil, err
		}
		if hi.Version == 2 {
			host.Hierarchies[i].Controllers = offeredControllers(d.path)
			d.h = host.Hierarchies[i]
		}
		b.dirs = append(b.dirs, d)
	}
	return b, nil
}

func resolveBase(hi Hierarchy, cg string) (baseDir, error) {
	if !path.IsAbs(cg) || path.Clean(cg) != cg || cg == "/" || slices.Contains(strings.Split(cg, "/"), "..") {
		return baseDir{}, fmt.Errorf("cgroup base %q on the %s hierarchy is not an absolute, clean cgroup path below the root", cg, hi.Key())
	}
	dir, ok := hi.Dir(cg)
	if !ok {
		return baseDir{}, fmt.Errorf("cgroup base %s on the %s hierarchy is outside the part of it this process sees (%s, mounted at %s); "+
			"set cgroup.parents.%q in the host config to a cgroup below %s", cg, hi.Key(), hi.Root, hi.Mountpoint, hi.Key(), hi.Root)
	}
	return baseDir{h: hi, cg: cg, path: dir}, nil
}

// offeredControllers is what a cgroup2 base offers containers: its own
// cgroup.controllers once it exists (lodge enables them all for its
// children); before, what its nearest existing ancestor enables for its
// children, which lodge passes down through the levels it creates.
func offeredControllers(dir string) []string {
	if ctrls, err := readV2Controllers(dir); err == nil {
		return ctrls
	}
	for p := filepath.Dir(dir); p != "/" && p != "."; p = filepath.Dir(p) {
		if data, err := readFile(filepath.Join(p, "cgroup.subtree_control")); err == nil {
			return strings.Fields(data)
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil
		}
	}
	return nil
}

// Host is the detected host with the cgroup2 controllers the base offers:
// what limits can use.
func (b *Base) Host() *Host { return b.host }

// Paths maps each hierarchy's key to the base's host directory in it.
func (b *Base) Paths() map[string]string {
	m := make(map[string]string, len(b.dirs))
	for _, d := range b.dirs {
		m[d.h.Key()] = d.path
	}
	return m
}

// Cgroups maps each hierarchy's key to the base's cgroup path, as
// /proc/PID/cgroup shows it.
func (b *Base) Cgroups() map[string]string {
	m := make(map[string]string, len(b.dirs))
	for _, d := range b.dirs {
		m[d.h.Key()] = d.cg
	}
	return m
}

// Group returns container name's group, BASE/NAME on every hierarchy.
// Nothing is created until Create. An invalid name gives a group whose
// Create, Apply, AddProcess and Delegate fail.
func (b *Base) Group(name string) *Group { return b.group(name, false) }

// MonitorGroup returns the group of container name's monitor,
// BASE/.monitor/NAME on every hierarchy: out of the caller's cgroup (whose
// end, an SSH session's scope say, must not end the container) and out of
// the container's (its limits and kills are the guest's).
func (b *Base) MonitorGroup(name string) *Group { return b.group(name, true) }

func (b *Base) group(name string, monitor bool) *Group {
	g := &Group{host: b.host, base: b, monitor: monitor, name: name}
	if err := checkName(name); err != nil {
		g.err = err
		return g
	}
	for _, d := range b.dirs {
		parent := d.path
		if monitor {
			parent = filepath.Join(d.path, MonitorDir)
		}
		g.dirs = append(g.dirs, groupDir{h: d.h, parent: parent, path: filepath.Join(parent, name)})
	}
	return g
}

// ensure makes the base on every hierarchy, with the levels above it that
// are missing, ready for groups: v1 cpusets seeded, cgroup2 controllers
// enabled for its children.
func (b *Base) ensure() error {
	for _, d := range b.dirs {
		if err := retryVanished(d.ensure); err != nil {
			return fmt.Errorf("cgroup base %s on the %s hierarchy (%s): %w; set cgroup.parent (or cgroup.parents.%q for this hierarchy) "+
				"in the host config to a cgroup lodge may create and write to, e.g. one delegated to it", d.cg, d.h.Key(), d.path, err, d.h.Key())
		}
	}
	return nil
}

// ensure creates the base's missing levels top down. Only levels lodge
// creates get controllers enabled on cgroup2 (the base itself, and
// intermediate levels that did not exist): an existing ancestor belongs to
// whoever made it (systemd, the admin), and enabling controllers there
// could break its own no-internal-process rule or policy.
func (d baseDir) ensure() error {
	var missing []string
	for p := d.path; !exists(p) && len(p) > len(d.h.Mountpoint); p = filepath.Dir(p) {
		missing = append(missing, p)
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := d.makeLevel(missing[i]); err != nil {
			return err
		}
	}
	if d.h.Version == 2 {
		return d.enableAll(d.path)
	}
	if d.h.Has("cpuset") && len(missing) == 0 {
		return copyCpuset(filepath.Dir(d.path), d.path) // an empty base made by hand
	}
	return nil
}

func (d baseDir) makeLevel(dir string) error {
	if err := mkdir(dir); err != nil {
		return err
	}
	switch {
	case d.h.Version == 2 && dir != d.path:
		return d.enableAll(dir)
	case d.h.Version == 1 && d.h.Has("cpuset"):
		return copyCpuset(filepath.Dir(dir), dir)
	}
	return nil
}

// enableAll enables for dir's children lodge's controllers that dir has.
func (d baseDir) enableAll(dir string) error {
	have, err := readV2Controllers(dir)
	if err != nil {
		return err
	}
	want := slices.DeleteFunc(slices.Clone(v2Controllers), func(c string) bool { return !slices.Contains(have, c) })
	if err := enableControllers(dir, want); err != nil {
		if errors.Is(err, unix.EBUSY) {
			return internalProcessesError(dir, err)
		}
		return err
	}
	return nil
}

// OwnParents maps every hierarchy this process is in to the cgroup sub below
// its own cgroup there: the cgroup.parents of a host config that keeps a
// program's containers inside its own cgroup (the tests, the demo, the
// benchmark).
func OwnParents(sub string) (map[string]string, error) {
	self, err := readProcCgroup("self")
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, pc := range self {
		out[pc.Key()] = path.Join(pc.Path, sub)
	}
	return out, nil
}
