package cgroup

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// v2Controllers are the cgroup2 controllers lodge enables for its containers
// (those it sets limits with, plus io for the guest's own use), where the
// host offers them.
var v2Controllers = []string{"cpuset", "cpu", "io", "memory", "pids"}

// Create makes the group's directory on every hierarchy, and the base (see
// Base.ensure) if needed. A stale empty group left by a crash is reused
// (thawed, its sub-cgroups removed); a group that still holds processes is
// ErrBusy. Creating and destroying different groups of one base concurrently
// is safe. A container's new group may use only the devices in
// AllowedDevices. A monitor's group (see createMonitor) gets no device rules.
func (g *Group) Create() error {
	if g.err != nil {
		return fmt.Errorf("create cgroup: %w", g.err)
	}
	if g.monitor {
		return g.createMonitor()
	}
	if pids, err := g.Procs(); err != nil {
		return err
	} else if len(pids) > 0 {
		return fmt.Errorf("create cgroup %s: %w %v (is the container running already, or a same-named container of another lodge root "+
			"with the same cgroup.parent? Such roots need distinct container names or each its own cgroup.parent)", g.dirs[0].path, ErrBusy, pids)
	}
	stale := g.Exists()
	if g.base != nil {
		if err := g.base.ensure(); err != nil {
			return err
		}
	}
	for _, d := range g.dirs {
		if err := retryVanished(func() error { return d.create(false) }); err != nil {
			g.Destroy()
			return fmt.Errorf("create cgroup %s: %w", g.name, err)
		}
	}
	if stale {
		if err := g.resetStale(); err != nil {
			return fmt.Errorf("reuse stale cgroup %s: %w", g.name, err)
		}
	}
	if err := g.restrictDevices(); err != nil {
		g.Destroy()
		return err
	}
	return nil
}

// createMonitor makes a monitor's group. It may hold processes already: the
// container's previous monitor, on its way out (see Leave), or one that was
// killed; nothing in it needs resetting.
func (g *Group) createMonitor() error {
	if g.base == nil {
		return fmt.Errorf("create cgroup %s: a monitor's group is made from its base", g.name)
	}
	if err := g.base.ensure(); err != nil {
		return err
	}
	for _, d := range g.dirs {
		if err := retryVanished(func() error { return d.create(true) }); err != nil {
			return fmt.Errorf("create cgroup %s: %w", d.path, err)
		}
	}
	return nil
}

// create makes the group on one hierarchy, below the base that ensure made
// (and .monitor for a monitor's group). A new v1 cpuset cgroup starts with
// no CPUs and no memory nodes, and no task can join it: copy them from the
// parent, and set clone_children on a container's group so that the
// guest's own sub-cgroups get them too. On cgroup2 the base enables the
// controllers.
func (d groupDir) create(monitor bool) error {
	cpuset := d.h.Version == 1 && d.h.Has("cpuset")
	if monitor {
		if err := mkdir(d.parent); err != nil {
			return err
		}
		if cpuset {
			if err := copyCpuset(filepath.Dir(d.parent), d.parent); err != nil {
				return err
			}
		}
	}
	if err := mkdir(d.path); err != nil {
		return err
	}
	if !cpuset {
		return nil
	}
	if err := copyCpuset(d.parent, d.path); err != nil {
		return err
	}
	if monitor {
		return nil
	}
	return writeFile(filepath.Join(d.path, "cgroup.clone_children"), "1")
}

// copyCpuset gives dir its parent's CPUs and memory nodes where it has none.
// Concurrent callers write the same values, so no lock is needed; but each
// file is checked on its own: another caller may have written the first
// and not yet the second, and a caller that took a filled cpuset.mems for
// a finished copy left cpuset.cpus empty, so that its container's monitor
// could not join (ENOSPC) when two started at once.
func copyCpuset(from, dir string) error {
	for _, f := range []string{"cpuset.mems", "cpuset.cpus"} {
		cur, err := readFile(filepath.Join(dir, f))
		if err != nil {
			return err
		}
		if cur != "" {
			continue
		}
		v, err := readFile(filepath.Join(from, f))
		if err != nil {
			return err
		}
		if err := writeFile(filepath.Join(dir, f), v); err != nil {
			return fmt.Errorf("copy %s %q from %s: %w", f, v, from, err)
		}
	}
	return nil
}

// enableControllers adds the controllers missing from dir's subtree_control.
func enableControllers(dir string, want []string) error {
	file := filepath.Join(dir, "cgroup.subtree_control")
	cur, err := readFile(file)
	if err != nil {
		return err
	}
	have := strings.Fields(cur)
	var add []string
	for _, c := range want {
		if !slices.Contains(have, c) {
			add = append(add, "+"+c)
		}
	}
	if len(add) == 0 {
		return nil
	}
	if err := writeFile(file, strings.Join(add, " ")); err != nil {
		return fmt.Errorf("enable controllers %q in %s: %w", strings.Join(add, " "), file, err)
	}
	return nil
}

func internalProcessesError(dir string, err error) error {
	return fmt.Errorf("%w: %w: cgroup v2's no-internal-process rule lets a cgroup either hold processes "+
		"or enable controllers for its children, and %s holds processes; move them to a leaf cgroup, "+
		"or choose a cgroup.parent that holds none (a base of lodge's own, e.g. a lodge.slice, or below a unit with Delegate=yes)", ErrInternalProcesses, err, dir)
}

// resetStale prepares a group left by a crash for a new container: thawed,
// with the old guest's sub-cgroups gone.
func (g *Group) resetStale() error {
	if fr := g.freezer(); fr != nil {
		if err := fr.thaw(); err != nil {
			return err
		}
	}
	for _, d := range g.dirs {
		children, err := subdirs(d.path)
		if err != nil {
			return err
		}
		for _, c := range children {
			if err := removeTree(c); err != nil {
				return err
			}
		}
	}
	return nil
}
