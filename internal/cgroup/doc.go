// Package cgroup gives each container one cgroup across all of the host's
// cgroup hierarchies, behind one set of operations that hide whether the host
// is pure cgroup v2 (Unified), v1 controllers beside a controller-less
// cgroup2 hierarchy (Hybrid), or v1 only (Legacy).
//
// The layout is detected once (DetectHost, from /proc/self/mountinfo and
// /proc/self/cgroup). A container's group lives in the host's base, an
// absolute cgroup path per hierarchy from the host config, whatever cgroup
// the calling process is in: BASE/NAME, and its monitor's BASE/.monitor/NAME
// (see Base):
//
//	h, _ := cgroup.DetectHost()
//	b, _ := h.Base("/lodge", nil)   // cgroup.parent, cgroup.parents
//	g := b.Group("web1")
//	g.Create()                      // mkdir everywhere; v1 cpuset seeded, v2 controllers enabled
//	g.Apply(cgroup.Limits{...})     // memory, swap, CPU quota, cpuset, pids
//	g.Delegate(rootUID, rootGID)    // the guest's systemd may make sub-cgroups, not raise limits
//	g.AddProcess(pid)               // then init unshares CLONE_NEWCGROUP and mounts g.InsideMounts()
//	...
//	g.Kill(ctx); g.Destroy()
//
// Later lodge processes find the group again with Open(g.Paths()), whatever
// cgroup they run in.
//
// Where the versions differ, the group picks per operation: limits go to the
// hierarchy that has the controller (v2 files or v1 files); freezing and
// killing use cgroup2's core cgroup.freeze and cgroup.kill whenever the group
// has a cgroup2 directory (hybrid hosts included: they need no controller),
// else the v1 freezer hierarchy and signals.
//
// The parsers (ParseMountinfo, ParseProcCgroup) and the renderers of limit
// values are pure and unit-tested on sample text for all three modes; the
// rest is tested as root against the running kernel.
package cgroup
