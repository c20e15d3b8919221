package idmap

import (
	"errors"
	"fmt"
)

// ErrTaken is returned by Reserve when the range asked for overlaps one
// recorded for another name.
var ErrTaken = errors.New("is taken")

// Reserve records range r for name: a container arriving from another host
// (a migration), whose checkpoint holds absolute id maps and so needs the
// very range it had there. r must be one of the pool's ranges and overlap
// no recorded range; a name holding r already is not an error.
func (a *Allocator) Reserve(name string, r Range) error {
	if name == "" {
		return errors.New("reserve id range: empty container name")
	}
	if err := a.pool.Validate(); err != nil {
		return fmt.Errorf("reserve id range %s for %q: %w", r, name, err)
	}
	if !a.pool.holds(r) {
		return fmt.Errorf("reserve id range %s for %q: not a range of this host's pool (%d ranges of %d ids from host id %d); the hosts need the same idmap settings",
			r, name, a.pool.Count, a.pool.Size, a.pool.First)
	}
	err := a.update(func(t *table) error {
		if old, ok := t.Allocations[name]; ok {
			if old == r {
				return errUnchanged
			}
			return fmt.Errorf("container %q %w (%s) in %s", name, ErrExists, old, a.path)
		}
		for other, o := range t.Allocations {
			if o.Overlaps(r) {
				return fmt.Errorf("range %s %w by container %s here", r, ErrTaken, other)
			}
		}
		t.Allocations[name] = r
		return nil
	})
	if err != nil {
		return fmt.Errorf("reserve id range for %q: %w", name, err)
	}
	return nil
}

// holds tells whether r is one of the pool's ranges.
func (p Pool) holds(r Range) bool {
	if r.Size != p.Size || r.HostID < p.First || (r.HostID-p.First)%p.Size != 0 {
		return false
	}
	return (r.HostID-p.First)/p.Size < p.Count
}
