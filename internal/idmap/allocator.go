package idmap

import (
	"errors"
	"fmt"
	"maps"
	"os"

	"golang.org/x/sys/unix"
)

// ErrExists is returned by Allocate when the name already holds a range.
var ErrExists = errors.New("already holds an id range")

// ErrExhausted is returned by Allocate when every range of the pool is taken.
var ErrExhausted = errors.New("id range pool exhausted")

// Allocator hands out ranges of a pool and records them in a file. Every
// change takes an exclusive flock on PATH.lock, so concurrent lodge processes
// (and concurrent Allocators in one process) never hand out the same range.
type Allocator struct {
	path string
	pool Pool
	// InUse, if set, lists the processes of container name that still use
	// ids of its range r (from the kernel: see ProcessUses); Release refuses
	// while there are any. Ids alone cannot say whose a process is: another
	// lodge root with an overlapping pool may run a container with the same ids.
	InUse func(name string, r Range) ([]int, error)
}

// Open returns the allocator whose table is the file at path (created on the
// first allocation). Nothing is read until a method is called.
func Open(path string, pool Pool) *Allocator {
	return &Allocator{path: path, pool: pool}
}

// Path is the allocation table file.
func (a *Allocator) Path() string { return a.path }

// Allocate gives name the lowest free range of the pool and records it.
func (a *Allocator) Allocate(name string) (Range, error) {
	if name == "" {
		return Range{}, errors.New("allocate id range: empty container name")
	}
	if err := a.pool.Validate(); err != nil {
		return Range{}, fmt.Errorf("allocate id range for %q: %w", name, err)
	}
	var got Range
	err := a.update(func(t *table) error {
		if r, ok := t.Allocations[name]; ok {
			return fmt.Errorf("container %q %w (%s) in %s", name, ErrExists, r, a.path)
		}
		r, ok := a.pool.lowestFree(t.ranges())
		if !ok {
			return a.exhausted(t)
		}
		t.Allocations[name] = r
		got = r
		return nil
	})
	if err != nil {
		return Range{}, fmt.Errorf("allocate id range for %q: %w", name, err)
	}
	return got, nil
}

func (a *Allocator) exhausted(t *table) error {
	p := a.pool
	return fmt.Errorf("%w: %d containers hold ranges and all %d ranges of %d ids from host id %d are in use; "+
		"raise idmap.count in the host config (or delete containers)", ErrExhausted, len(t.Allocations), p.Count, p.Size, p.First)
}

// Lookup returns the range recorded for name, if any.
func (a *Allocator) Lookup(name string) (Range, bool, error) {
	t, err := a.read()
	if err != nil {
		return Range{}, false, err
	}
	r, ok := t.Allocations[name]
	return r, ok, nil
}

// Release forgets the range of name. Releasing a name that holds no range is
// not an error. While InUse names processes of name that run with ids of the
// range, it is refused with ErrInUse: the next container would be given ids
// that processes of this one still hold. The check runs under the table's
// lock, so no allocation can take the range in between.
func (a *Allocator) Release(name string) error {
	err := a.update(func(t *table) error {
		r, ok := t.Allocations[name]
		if !ok {
			return errUnchanged
		}
		if a.InUse != nil {
			pids, err := a.InUse(name, r)
			if err != nil {
				return err
			}
			if len(pids) > 0 {
				return fmt.Errorf("range %s %w by processes %v; stop them first", r, ErrInUse, pids)
			}
		}
		delete(t.Allocations, name)
		return nil
	})
	if err != nil {
		return fmt.Errorf("release id range of %q: %w", name, err)
	}
	return nil
}

// List returns every recorded allocation.
func (a *Allocator) List() (map[string]Range, error) {
	t, err := a.read()
	if err != nil {
		return nil, err
	}
	return maps.Clone(t.Allocations), nil
}

// errUnchanged tells update that there is nothing to write.
var errUnchanged = errors.New("unchanged")

// update runs change on the table under the exclusive lock and writes the
// result unless change fails.
func (a *Allocator) update(change func(*table) error) error {
	unlock, err := a.lock()
	if err != nil {
		return err
	}
	defer unlock()
	t, err := a.read()
	if err != nil {
		return err
	}
	if err := change(t); err != nil {
		if errors.Is(err, errUnchanged) {
			return nil
		}
		return err
	}
	return a.write(t)
}

// lock takes the exclusive lock. Each call opens the lock file anew, so the
// lock excludes other Allocators of this process as well as other processes.
func (a *Allocator) lock() (func(), error) {
	lockPath := a.path + ".lock"
	f, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open id range lock: %w", err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", lockPath, err)
	}
	return func() { f.Close() }, nil
}
