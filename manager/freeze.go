package manager

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"lodge/config"
	"lodge/internal/cgroup"
	"lodge/internal/events"
	"lodge/internal/store"
)

// ErrFrozen marks a refusal because the container is frozen (lodge freeze):
// a command run in it would freeze as it starts.
var ErrFrozen = errors.New("is frozen")

// DefaultFreezeTimeout is how long lodge freeze waits for every task of a
// container to freeze before it gives up and thaws it again.
const DefaultFreezeTimeout = 10 * time.Second

// FreezeResult says what a freeze or unfreeze did.
type FreezeResult struct {
	Already bool          // the container was frozen (thawed) already: nothing done
	Took    time.Duration // from the request to the kernel saying every task is frozen
	// Committed: the unfreeze thawed a copy held for its migration's
	// source, and committed that migration here.
	Committed bool
}

// Freeze stops every process of a running container through its cgroup
// freezer (cgroup2's cgroup.freeze, else the v1 freezer) and returns once
// the kernel says all are frozen. Within timeout (0: DefaultFreezeTimeout),
// or the container is thawed again and the error names the tasks that did
// not freeze and where they wait in the kernel. The container stays frozen
// until Unfreeze, stop or delete --force: a copy or snapshot in between
// leaves it frozen. Unlike the freeze a copy holds for its cut (frozen-by),
// a user's freeze has no owner and is never thawed behind the user's back.
func (m *Manager) Freeze(ctx context.Context, name string, timeout time.Duration) (FreezeResult, error) {
	if timeout <= 0 {
		timeout = DefaultFreezeTimeout
	}
	g, unlock, err := m.lockedGroup(ctx, name)
	if err != nil {
		return FreezeResult{}, err
	}
	defer unlock()
	if frozen, err := g.Frozen(); err != nil {
		return FreezeResult{}, fmt.Errorf("freeze %s: %w", name, err)
	} else if frozen {
		return FreezeResult{Already: true}, nil
	}
	began := time.Now()
	fctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := g.Freeze(fctx); err != nil {
		var nf *cgroup.NotFrozenError
		if errors.As(err, &nf) && ctx.Err() == nil {
			return FreezeResult{}, notFrozenError(name, timeout, nf)
		}
		return FreezeResult{}, fmt.Errorf("freeze %s: %w", name, err)
	}
	m.emit(name, events.Event{Type: events.Frozen})
	return FreezeResult{Took: time.Since(began)}, nil
}

// lockedGroup takes the lock of a running container and returns its
// cgroups. A copy's freeze that a killed lodge left is thawed first: what
// freeze and unfreeze then see is the user's own, without a frozen-by
// marker.
func (m *Manager) lockedGroup(ctx context.Context, name string) (*cgroup.Group, func(), error) {
	lock, err := m.store.Lock(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	m.thawAbandoned(name)
	st, err := m.running(name)
	if err != nil {
		lock.Unlock()
		return nil, nil, err
	}
	return cgroup.Open(st.Cgroups), lock.Unlock, nil
}

// notFrozenError says which tasks kept a container from freezing in time.
func notFrozenError(name string, timeout time.Duration, nf *cgroup.NotFrozenError) error {
	state := "it runs on, thawed again"
	if nf.ThawErr != nil {
		state = fmt.Sprintf("thawing it again failed (%v): lodge unfreeze %s", nf.ThawErr, name)
	}
	what := "every task had frozen by the time lodge looked: try again"
	if len(nf.Tasks) > 0 {
		var tasks []string
		for _, t := range nf.Tasks {
			tasks = append(tasks, t.String())
		}
		what = fmt.Sprintf("%d task(s) did not freeze, stuck in the kernel: %s", len(nf.Tasks), strings.Join(tasks, "; "))
		if nf.InPlace {
			what = fmt.Sprintf("%d task(s) not in the v1 freezer's refrigerator (those asleep in a freezable wait may be frozen in place; the others are stuck in the kernel): %s", len(nf.Tasks), strings.Join(tasks, "; "))
		}
	}
	return fmt.Errorf("container %s did not freeze within %v (--timeout): %s; %s", name, timeout, what, state)
}

// Unfreeze lets a frozen container's processes run again. A container that
// is not frozen is left as it is (Already).
func (m *Manager) Unfreeze(ctx context.Context, name string) (FreezeResult, error) {
	res, err := m.unfreeze(ctx, name)
	if err == nil && !res.Already && !res.Committed {
		m.emit(name, events.Event{Type: events.Unfrozen})
	}
	return res, err
}

// unfreeze is Unfreeze without its event, for a migration's commit (the
// thaw of the held copy is reported as the migration).
func (m *Manager) unfreeze(ctx context.Context, name string) (FreezeResult, error) {
	// A copy held for its migration's source (docs/migration.md): thawing
	// it is the operator's word that it is the one to keep, as the source's
	// Commit would be. Marked committed first, so that no Abort of that
	// migration removes it after.
	if mark, held := m.heldForMigration(name); held {
		mark.Committed = true
		if err := m.setMark(name, mark); err != nil {
			return FreezeResult{}, fmt.Errorf("unfreeze %s: commit its migration: %w", name, err)
		}
		began := time.Now()
		if err := m.finishCommit(ctx, name); err != nil {
			return FreezeResult{}, fmt.Errorf("unfreeze %s: commit its migration: %w", name, err)
		}
		m.emit(name, events.Event{Type: events.Migrated, Direction: events.DirectionIn, Reason: "committed by unfreeze"})
		return FreezeResult{Took: time.Since(began), Committed: true}, nil
	}
	g, unlock, err := m.lockedGroup(ctx, name)
	if err != nil {
		return FreezeResult{}, err
	}
	defer unlock()
	frozen, err := g.Frozen()
	if err != nil {
		return FreezeResult{}, fmt.Errorf("unfreeze %s: %w", name, err)
	}
	if !frozen && !freezing(g) {
		return FreezeResult{Already: true}, nil
	}
	began := time.Now()
	if err := g.Thaw(); err != nil {
		return FreezeResult{}, fmt.Errorf("unfreeze %s: %w", name, err)
	}
	return FreezeResult{Took: time.Since(began)}, nil
}

// heldForMigration returns the marker of a container restored here by a
// migration and held frozen for its source, which has not committed it.
func (m *Manager) heldForMigration(name string) (migrationMark, bool) {
	if config.ValidateName(name) != nil {
		return migrationMark{}, false
	}
	mark, ok := m.uncommitted(name)
	return mark, ok && mark.Held && !mark.Committed
}

// freezing reports a freeze asked for but not complete (a killed lodge
// freeze, or a task stuck): unfreeze thaws it too. Where the state cannot
// be told, it says true: a thaw of a thawed group is harmless.
func freezing(g *cgroup.Group) bool {
	asked, err := g.FreezeRequested()
	return err != nil || asked
}

// isFrozen reports whether a running container is frozen (or being
// frozen).
func isFrozen(st *store.State) bool {
	g := cgroup.Open(st.Cgroups)
	frozen, err := g.Frozen()
	return err == nil && frozen
}

// thawForStop thaws a frozen container before it is stopped: a frozen init
// cannot take its stop signal, and a v1-frozen task not even a kill.
func (m *Manager) thawForStop(name string, st *store.State) error {
	g := cgroup.Open(st.Cgroups)
	if !freezing(g) {
		return nil
	}
	if err := g.Thaw(); err != nil {
		return fmt.Errorf("stop %s: thaw it first: %w", name, err)
	}
	return nil
}

// frozenRefusal is the error of a command that cannot run in a frozen
// container.
func frozenRefusal(name, what string) error {
	return kindError{fmt.Errorf("container %q %w: %s; unfreeze it first: lodge unfreeze %s", name, ErrFrozen, what, name), ErrFrozen}
}
