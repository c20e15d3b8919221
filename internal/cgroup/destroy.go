package cgroup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// rmdirGrace bounds how long Destroy retries a cgroup that is busy although
// it lists no process (a task still on its way out).
const rmdirGrace = time.Second

// Destroy removes the group and its sub-cgroups on every hierarchy, then the
// parent where no other container uses it. A group already gone is fine. If
// processes remain, nothing is removed and the error (ErrBusy) names them.
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
	for _, d := range g.dirs {
		// Other containers' groups keep the parent busy: that is fine.
		err := os.Remove(d.parent)
		if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, unix.EBUSY) && !errors.Is(err, unix.ENOTEMPTY) {
			return fmt.Errorf("destroy cgroup %s: remove parent: %w", g.name, err)
		}
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
