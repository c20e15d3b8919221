package cgroup

import (
	"path"
	"strings"
)

// CRIURoots are the group's cgroups as CRIU's cgroup roots (--cgroup-root
// CTRL:PATH, PATH relative to the hierarchy's root): a restore puts the
// tree there, whatever cgroups it was dumped from (another host's, or
// another lodge root's). Named v1 hierarchies are "name=NAME", other v1
// ones are named by their first controller, and cgroup2's path is given
// under "" (CRIU's default root, for every controller not named).
func (g *Group) CRIURoots() map[string]string {
	out := map[string]string{}
	for _, d := range g.dirs {
		rel, ok := strings.CutPrefix(d.path, d.h.Mountpoint)
		if !ok {
			continue
		}
		cg := path.Join("/", d.h.Root, rel)
		switch {
		case d.h.Version == 2:
			out[""] = cg
		case len(d.h.Controllers) > 0:
			out[d.h.Controllers[0]] = cg
		case d.h.Name != "":
			out["name="+d.h.Name] = cg
		}
	}
	return out
}
