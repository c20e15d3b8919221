package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"lodge/internal/rawfile"

	"golang.org/x/sys/unix"
)

// Lock is an exclusive lock on one container, held while its lifecycle changes
// (start, stop, delete, config edits) so that two lodge commands never interleave.
// It is a flock on the container's directory, so it vanishes with the directory
// and leaves no lock file behind.
type Lock struct{ dir *os.File }

// Lock takes the lock of container name, waiting for another holder to
// finish until ctx ends. The lock it returns is on the container's directory
// as it is now: if the container was deleted while we waited, Lock says it
// does not exist; if it was deleted and created again, Lock takes the new
// container's lock.
func (s *Store) Lock(ctx context.Context, name string) (*Lock, error) {
	for {
		lock, err := s.lockDir(ctx, name)
		if !errors.Is(err, errReplaced) {
			return lock, err
		}
	}
}

// errReplaced means the directory we locked is no longer the container's.
var errReplaced = errors.New("container directory replaced while waiting for its lock")

func (s *Store) lockDir(ctx context.Context, name string) (*Lock, error) {
	if err := s.MustExist(name); err != nil {
		return nil, err
	}
	dir, err := os.Open(s.ContainerDir(name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, s.MustExist(name)
	}
	if err != nil {
		return nil, fmt.Errorf("lock container %q: %w", name, err)
	}
	if err := flockContext(ctx, dir); err != nil {
		dir.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("container %q is busy with another lodge command (start, stop, delete or a config change); stopped waiting for it: %w", name, err)
		}
		return nil, fmt.Errorf("lock container %q: %w", name, err)
	}
	if err := s.stillAt(dir, name); err != nil {
		dir.Close()
		return nil, err
	}
	return &Lock{dir: dir}, nil
}

// stillAt checks that dir, open and locked, is still container name's
// directory: a delete moves the directory away (and a create may put a new
// one in its place) while a waiter holds it open.
func (s *Store) stillAt(dir *os.File, name string) error {
	var held, now unix.Stat_t
	if err := unix.Fstat(int(dir.Fd()), &held); err != nil {
		return fmt.Errorf("lock container %q: %w", name, err)
	}
	err := unix.Lstat(s.ContainerDir(name), &now)
	if errors.Is(err, unix.ENOENT) || (err == nil && now.Mode&unix.S_IFMT != unix.S_IFDIR) {
		return s.MustExist(name)
	}
	if err != nil {
		return fmt.Errorf("lock container %q: %w", name, err)
	}
	if held.Dev != now.Dev || held.Ino != now.Ino {
		return errReplaced
	}
	return nil
}

// LockBootOrder takes the host-wide lock of the containers' boot.after
// lists, waiting for another holder until ctx ends. A change of one list is
// checked against all the others (no cycle, no unknown name) and saved
// under it: each container's own lock alone would let two changes made at
// once, a after b and b after a, both pass their check. It is a flock on
// the containers directory, so it leaves no file behind. Take it after a
// container's own lock, never before (one order: no deadlock).
func (s *Store) LockBootOrder(ctx context.Context) (*Lock, error) {
	if err := s.Prepare(); err != nil {
		return nil, err
	}
	dir, err := os.Open(s.containersDir())
	if err != nil {
		return nil, fmt.Errorf("lock the boot order: %w", err)
	}
	if err := flockContext(ctx, dir); err != nil {
		dir.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("another lodge command is changing a boot.after list; stopped waiting for it: %w", err)
		}
		return nil, fmt.Errorf("lock the boot order: %w", err)
	}
	return &Lock{dir: dir}, nil
}

// Unlock releases the lock. It is safe to call on a nil Lock.
func (l *Lock) Unlock() {
	if l != nil && l.dir != nil {
		l.dir.Close()
		l.dir = nil
	}
}

// Waiting for a lock polls: a blocking flock cannot be interrupted when ctx
// ends, and a goroutine left blocked in one would take the lock later for
// nobody. The first try costs nothing more than a blocking flock; a waiter
// then checks again after 1ms, 2ms, ... up to maxLockPoll.
const maxLockPoll = 25 * time.Millisecond

// flockContext takes an exclusive flock on f, waiting until ctx ends.
func flockContext(ctx context.Context, f *os.File) error {
	delay := time.Millisecond
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		switch err {
		case nil:
			return nil
		case unix.EINTR:
			continue
		case unix.EWOULDBLOCK:
		default:
			return err
		}
		if err := sleepContext(ctx, delay); err != nil {
			return err
		}
		delay = min(2*delay, maxLockPoll)
	}
}

// sleepContext waits for d or until ctx ends, whichever comes first.
func sleepContext(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// Busy reports whether a lifecycle change (start, stop, delete, config edit)
// holds container name's lock right now. It must not be asked by the holder.
func (s *Store) Busy(name string) bool {
	return rawfile.Locked(s.ContainerDir(name))
}

// File is the locked directory. A child process given it (exec.Cmd's
// ExtraFiles) holds the lock with its taker until it exits, even if the
// taker dies first: a CRIU dump still at work keeps the container locked.
func (l *Lock) File() *os.File { return l.dir }
