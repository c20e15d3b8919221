package cgroup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// rmdirGrace bounds how long Destroy retries a cgroup that is busy although
// it lists no process (a task still on its way out).
const rmdirGrace = time.Second

// Destroy removes the group and its sub-cgroups on every hierarchy. The base
// (and .monitor) stay: they are the host's fixed place for lodge, and
// keeping them spares each start enabling controllers again. A group already
// gone is fine. If processes remain, nothing is removed and the error
// (ErrBusy) names them.
func (g *Group) Destroy() error {
	if pids, err := g.Procs(); err != nil {
		return err
	} else if len(pids) > 0 {
		return fmt.Errorf("destroy cgroup %s: %w %v; stop or kill them first", g.name, ErrBusy, pids)
	}
	var errs []error
	for _, d := range g.dirs {
		if err := removeTree(d.path); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		err := errors.Join(errs...)
		if pids, _ := g.Procs(); len(pids) > 0 {
			return fmt.Errorf("destroy cgroup %s: %w %v; stop or kill them first: %w", g.name, ErrBusy, pids, err)
		}
		return fmt.Errorf("destroy cgroup %s: %w", g.name, err)
	}
	return nil
}

// removeTree removes the cgroup dir and its descendants, deepest first.
func removeTree(dir string) error {
	children, err := subdirs(dir)
	if err != nil {
		return err
	}
	for _, c := range children {
		if err := removeTree(c); err != nil {
			return err
		}
	}
	return rmdir(dir)
}

// rmdir removes one cgroup. EBUSY with no process listed is a task still
// exiting: retry briefly.
func rmdir(dir string) error {
	ctx, cancel := context.WithTimeout(context.Background(), rmdirGrace)
	defer cancel()
	var b backoff
	for {
		err := unix.Rmdir(dir)
		if err == nil || err == unix.ENOENT {
			return nil
		}
		if err != unix.EBUSY {
			return &fs.PathError{Op: "rmdir", Path: dir, Err: err}
		}
		pids, _ := readPids(dir + "/cgroup.procs")
		if len(pids) > 0 || b.wait(ctx) != nil {
			return &fs.PathError{Op: "rmdir", Path: dir, Err: err}
		}
	}
}

// Leave moves process pid (a monitor about to exit, itself) out of the
// group into the group's parent (.monitor, which enables no controllers, so
// cgroup v2 lets it hold processes) on every hierarchy, so that the group
// can be removed.
func (g *Group) Leave(pid int) error {
	if !g.monitor {
		return fmt.Errorf("leave cgroup %s: only a monitor's group can be left for its parent", g.name)
	}
	for _, d := range g.dirs {
		if err := writeFile(filepath.Join(d.parent, "cgroup.procs"), strconv.Itoa(pid)); err != nil && !vanished(err) {
			return fmt.Errorf("move process %d to cgroup %s: %w", pid, d.parent, err)
		}
	}
	return nil
}
