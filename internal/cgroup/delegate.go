package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Files handed to the container's root, per systemd's cgroup delegation
// document (and its cg_set_access): enough to create sub-cgroups, move
// processes between them and (v2) enable controllers for them. The group's
// limit files and its devices.* files stay owned by host root, so the guest
// can neither raise its limits nor widen its devices. (In sub-cgroups it
// makes, devices.allow is the guest's file, but writing it needs
// CAP_SYS_ADMIN in the host's user namespace, and a child cgroup never gets
// a device its parent lacks; the cgroup2 device program is the kernel's to
// attach, with CAP_SYS_ADMIN there too.)
var (
	delegateV1 = []string{"cgroup.procs", "tasks", "cgroup.clone_children"}
	delegateV2 = []string{"cgroup.procs", "cgroup.threads", "cgroup.subtree_control", "memory.oom.group", "memory.reclaim"}
)

// kernelDelegateList is the kernel's own list of cgroup2 files safe to delegate.
const kernelDelegateList = "/sys/kernel/cgroup/delegate"

// Delegate gives the group's directory and its delegation files to uid:gid
// (the container's root on the host) on every hierarchy.
func (g *Group) Delegate(uid, gid int) error {
	if g.err != nil {
		return g.err
	}
	v2 := v2DelegateFiles()
	for _, d := range g.dirs {
		files := delegateV1
		if d.h.Version == 2 {
			files = v2
		}
		if err := chownGroup(d.path, files, uid, gid); err != nil {
			return fmt.Errorf("delegate cgroup %s to %d:%d: %w", g.name, uid, gid, err)
		}
	}
	return nil
}

// v2DelegateFiles is systemd's list plus whatever a newer kernel lists.
func v2DelegateFiles() []string {
	files := slices.Clone(delegateV2)
	if data, err := os.ReadFile(kernelDelegateList); err == nil {
		for _, f := range strings.Fields(string(data)) {
			if !slices.Contains(files, f) {
				files = append(files, f)
			}
		}
	}
	return files
}

// chownGroup chowns dir and those of files that exist in it; cgroup.procs must.
func chownGroup(dir string, files []string, uid, gid int) error {
	if err := os.Chown(dir, uid, gid); err != nil {
		return err
	}
	for _, f := range files {
		err := os.Chown(filepath.Join(dir, f), uid, gid)
		if errors.Is(err, fs.ErrNotExist) && f != "cgroup.procs" {
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}
