package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Subgroups lists the cgroups below the group on each hierarchy, relative
// to the group's directory there, parents first: what the container's
// init made (systemd's slices and scopes, empty ones included). A
// checkpoint records them, since systemd watches even the empty ones.
func (g *Group) Subgroups() (map[string][]string, error) {
	out := map[string][]string{}
	for _, d := range g.dirs {
		err := walkDirs(d.path, func(dir string) error {
			if dir != d.path {
				rel, _ := filepath.Rel(d.path, dir)
				out[d.h.Key()] = append(out[d.h.Key()], rel)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("list the cgroups below %s: %w", g.name, err)
		}
	}
	return out, nil
}

// MakeSubgroups makes the cgroups Subgroups listed below the group (a
// restore does, before its tasks return), each with all its files owned
// by uid:gid, as if the container's root had made them, and a v1 cpuset
// one with its parent's CPUs and memory nodes (copyCpuset). Hierarchies the
// group has not are skipped.
func (g *Group) MakeSubgroups(subgroups map[string][]string, uid, gid int) error {
	for _, d := range g.dirs {
		for _, rel := range subgroups[d.h.Key()] {
			dir := filepath.Join(d.path, rel)
			if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
				return fmt.Errorf("cgroup %s: %w", dir, err)
			}
			if d.h.Version == 1 && d.h.Has("cpuset") {
				if err := copyCpuset(filepath.Dir(dir), dir); err != nil {
					return err
				}
			}
			if err := chownAll(dir, uid, gid); err != nil {
				return fmt.Errorf("cgroup %s: %w", dir, err)
			}
		}
	}
	return nil
}

// chownAll gives dir and every file in it to uid:gid.
func chownAll(dir string, uid, gid int) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.IsDir() {
			if err := os.Lchown(filepath.Join(dir, e.Name()), uid, gid); err != nil {
				return err
			}
		}
	}
	return os.Lchown(dir, uid, gid)
}
