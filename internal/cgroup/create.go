package cgroup

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// v2Controllers are the cgroup2 controllers lodge enables for its containers
// (those it sets limits with, plus io for the guest's own use), where the
// host offers them.
var v2Controllers = []string{"cpuset", "cpu", "io", "memory", "pids"}

// Create makes the group's directory, and the parent's, on every hierarchy.
// A stale empty group left by a crash is reused (thawed, its sub-cgroups
// removed); a group that still holds processes is ErrBusy. Creating and
// destroying different groups under one parent concurrently is safe. The
// new group may use only the devices in AllowedDevices.
func (g *Group) Create() error {
	if g.err != nil {
		return fmt.Errorf("create cgroup: %w", g.err)
	}
	if pids, err := g.Procs(); err != nil {
		return err
	} else if len(pids) > 0 {
		return fmt.Errorf("create cgroup %s: %w %v (is the container running already?)", g.name, ErrBusy, pids)
	}
	stale := g.Exists()
	for _, d := range g.dirs {
		create := d.createV1
		if d.h.Version == 2 {
			create = d.createV2
		}
		if err := retryVanished(create); err != nil {
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

// createV1 makes the parent and the group on a v1 hierarchy. A new cpuset
// cgroup starts with no CPUs and no memory nodes, and no task can join it: copy
// them from the parent, and set clone_children on the group so that the
// guest's own sub-cgroups get them too.
func (d groupDir) createV1() error {
	if err := mkdir(d.parent); err != nil {
		return err
	}
	if !d.h.Has("cpuset") {
		return mkdir(d.path)
	}
	if err := copyCpuset(d.h.OwnDir(), d.parent); err != nil {
		return err
	}
	if err := mkdir(d.path); err != nil {
		return err
	}
	if err := copyCpuset(d.parent, d.path); err != nil {
		return err
	}
	return writeFile(filepath.Join(d.path, "cgroup.clone_children"), "1")
}

// copyCpuset gives dir its parent's CPUs and memory nodes if it has none.
// Concurrent callers write the same values, so no lock is needed.
func copyCpuset(from, dir string) error {
	for _, f := range []string{"cpuset.mems", "cpuset.cpus"} {
		cur, err := readFile(filepath.Join(dir, f))
		if err != nil || cur != "" {
			return err
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

// createV2 enables lodge's controllers in lodge's own cgroup and in the
// parent, then makes the group.
func (d groupDir) createV2() error {
	want := slices.DeleteFunc(slices.Clone(v2Controllers), func(c string) bool { return !d.h.Has(c) })
	if err := enableControllers(d.h.OwnDir(), want); err != nil {
		if errors.Is(err, unix.EBUSY) {
			return internalProcessesError(d.h.OwnDir(), err)
		}
		return err
	}
	if err := mkdir(d.parent); err != nil {
		return err
	}
	if err := enableControllers(d.parent, want); err != nil {
		return err
	}
	return mkdir(d.path)
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

func internalProcessesError(own string, err error) error {
	return fmt.Errorf("%w: %w: cgroup v2's no-internal-process rule lets a cgroup either hold processes "+
		"or enable controllers for its children, and lodge's own cgroup %s holds processes; run lodge from "+
		"a cgroup with no other processes, e.g. a systemd unit with Delegate=yes (or move the other "+
		"processes to a leaf cgroup)", ErrInternalProcesses, err, own)
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
