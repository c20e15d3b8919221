package cgroup

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
)

// freezer is how a group is frozen: cgroup2's cgroup.freeze or the v1 freezer
// controller.
type freezer interface {
	freeze(ctx context.Context) error
	thaw() error
	frozen() (bool, error)
}

// freezer picks the group's freezer: cgroup2's core freezer when the group
// has one (on hybrid hosts too: it needs no controller), else the v1 freezer
// hierarchy, else nil.
func (g *Group) freezer() freezer {
	if d, ok := g.unified(); ok && exists(filepath.Join(d.path, "cgroup.freeze")) {
		return v2Freezer{d.path}
	}
	if fr, ok := g.v1Freezer(); ok {
		return fr
	}
	return nil
}

func (g *Group) v1Freezer() (v1Freezer, bool) {
	if d, ok := g.dirFor("freezer"); ok && d.h.Version == 1 {
		return v1Freezer{d.path}, true
	}
	return v1Freezer{}, false
}

func (g *Group) needFreezer() (freezer, error) {
	fr := g.freezer()
	if fr == nil {
		if !g.Exists() {
			return nil, fmt.Errorf("cgroup %s: %w", g.name, fs.ErrNotExist)
		}
		return nil, fmt.Errorf("freeze cgroup %s: no cgroup2 freezer and no v1 freezer hierarchy: %w", g.name, ErrUnsupported)
	}
	return fr, nil
}

// Freeze stops every process of the group and waits until all are frozen. If
// ctx ends first (a task stuck in the kernel keeps a v1 freezer in FREEZING),
// the group is thawed again and the error says so.
func (g *Group) Freeze(ctx context.Context) error {
	fr, err := g.needFreezer()
	if err != nil {
		return err
	}
	if err := fr.freeze(ctx); err != nil {
		return fmt.Errorf("freeze cgroup %s: %w", g.name, err)
	}
	return nil
}

// Thaw lets the group's processes run again.
func (g *Group) Thaw() error {
	fr, err := g.needFreezer()
	if err != nil {
		return err
	}
	if err := fr.thaw(); err != nil {
		return fmt.Errorf("thaw cgroup %s: %w", g.name, err)
	}
	return nil
}

// Frozen reports whether the group is completely frozen.
func (g *Group) Frozen() (bool, error) {
	fr, err := g.needFreezer()
	if err != nil {
		return false, err
	}
	ok, err := fr.frozen()
	if err != nil {
		return false, fmt.Errorf("freezer state of cgroup %s: %w", g.name, err)
	}
	return ok, nil
}

// waitFrozen polls until the freezer reports frozen; on ctx's end it thaws.
func waitFrozen(ctx context.Context, fr freezer) error {
	var b backoff
	for {
		ok, err := fr.frozen()
		if err != nil || ok {
			return err
		}
		if err := b.wait(ctx); err != nil {
			if terr := fr.thaw(); terr != nil {
				return fmt.Errorf("not frozen in time (%w), and thawing failed: %w", err, terr)
			}
			return fmt.Errorf("not frozen in time (a task may be stuck in the kernel); thawed again: %w", err)
		}
	}
}

// v2Freezer is cgroup2's cgroup.freeze, with the state in cgroup.events.
type v2Freezer struct{ dir string }

func (f v2Freezer) freeze(ctx context.Context) error {
	if err := writeFile(filepath.Join(f.dir, "cgroup.freeze"), "1"); err != nil {
		return err
	}
	return waitFrozen(ctx, f)
}

func (f v2Freezer) thaw() error { return writeFile(filepath.Join(f.dir, "cgroup.freeze"), "0") }

func (f v2Freezer) frozen() (bool, error) {
	events, err := readFile(filepath.Join(f.dir, "cgroup.events"))
	if err != nil {
		return false, err
	}
	return eventsFrozen(events), nil
}

// eventsFrozen reads the "frozen" key of cgroup.events.
func eventsFrozen(events string) bool {
	for _, line := range strings.Split(events, "\n") {
		if k, v, _ := strings.Cut(line, " "); k == "frozen" {
			return v == "1"
		}
	}
	return false
}

// v1Freezer is the v1 freezer controller's freezer.state: THAWED, FREEZING
// or FROZEN.
type v1Freezer struct{ dir string }

func (f v1Freezer) freeze(ctx context.Context) error {
	if err := writeFile(filepath.Join(f.dir, "freezer.state"), "FROZEN"); err != nil {
		return err
	}
	return waitFrozen(ctx, f)
}

func (f v1Freezer) thaw() error { return writeFile(filepath.Join(f.dir, "freezer.state"), "THAWED") }

func (f v1Freezer) frozen() (bool, error) {
	s, err := readFile(filepath.Join(f.dir, "freezer.state"))
	return s == "FROZEN", err
}

// FreezerDir is the directory of the group's freezer (cgroup2's, with
// cgroup.freeze, or the v1 freezer's, with freezer.state), for a program
// that freezes the group itself (CRIU's freeze_cgroup); "" when it has none.
func (g *Group) FreezerDir() string {
	switch fr := g.freezer().(type) {
	case v2Freezer:
		return fr.dir
	case v1Freezer:
		return fr.dir
	}
	return ""
}
