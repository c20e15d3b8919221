package cgroup

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// killFreezeTimeout bounds the freeze that precedes a v1 kill: a group stuck
// in FREEZING is killed anyway.
const killFreezeTimeout = 2 * time.Second

// Kill sends SIGKILL to every process of the group and its sub-cgroups and
// waits until none is left, or until ctx ends. cgroup2's cgroup.kill does it
// in one step, atomically with respect to fork. Without it (a v1-only host,
// or a kernel before 5.14), the group is frozen (if the host has a freezer) so
// that nothing forks meanwhile, each process is killed, and the group is
// thawed so that they die; this repeats until the group is empty.
func (g *Group) Kill(ctx context.Context) error {
	var b backoff
	for {
		pids, err := g.Procs()
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		if err := g.killOnce(ctx); err != nil {
			return fmt.Errorf("kill cgroup %s: %w", g.name, err)
		}
		if err := b.wait(ctx); err != nil {
			return fmt.Errorf("kill cgroup %s: processes %v remain: %w", g.name, pids, err)
		}
	}
}

func (g *Group) killOnce(ctx context.Context) error {
	if d, ok := g.unified(); ok {
		err := writeFile(filepath.Join(d.path, "cgroup.kill"), "1")
		if !errors.Is(err, unix.ENOENT) {
			// cgroup.kill also kills tasks frozen by cgroup.freeze, but not
			// those frozen by a v1 freezer: thaw that too.
			return errors.Join(err, g.thawV1())
		}
	}
	return g.killEach(ctx)
}

// killEach kills the group's processes one by one inside a freeze.
func (g *Group) killEach(ctx context.Context) error {
	fr := g.freezer()
	if fr != nil {
		fctx, cancel := context.WithTimeout(ctx, killFreezeTimeout)
		// A freeze that does not finish is thawed by waitFrozen: kill anyway.
		_ = fr.freeze(fctx)
		cancel()
	}
	pids, err := g.Procs()
	for _, pid := range pids {
		if kerr := unix.Kill(pid, unix.SIGKILL); kerr != nil && kerr != unix.ESRCH {
			err = errors.Join(err, fmt.Errorf("kill %d: %w", pid, kerr))
		}
	}
	if fr != nil {
		err = errors.Join(err, fr.thaw())
	}
	return err
}

func (g *Group) thawV1() error {
	if fr, ok := g.v1Freezer(); ok {
		return fr.thaw()
	}
	return nil
}
