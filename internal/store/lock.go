package store

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Lock is an exclusive lock on one container, held while its lifecycle changes
// (start, stop, delete, config edits) so that two lodge commands never interleave.
// It is a flock on the container's directory, so it vanishes with the directory
// and leaves no lock file behind.
type Lock struct{ dir *os.File }

// Lock takes the lock of container name, waiting for another holder to finish.
func (s *Store) Lock(name string) (*Lock, error) {
	if err := s.MustExist(name); err != nil {
		return nil, err
	}
	dir, err := os.Open(s.ContainerDir(name))
	if err != nil {
		return nil, fmt.Errorf("lock container %q: %w", name, err)
	}
	if err := flockRetry(dir, unix.LOCK_EX); err != nil {
		dir.Close()
		return nil, fmt.Errorf("lock container %q: %w", name, err)
	}
	// The directory may have been deleted while we waited.
	if !s.Exists(name) {
		dir.Close()
		return nil, s.MustExist(name)
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

func flockRetry(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			return err
		}
	}
}

// Busy reports whether a lifecycle change (start, stop, delete, config edit)
// holds container name's lock right now. It must not be asked by the holder.
func (s *Store) Busy(name string) bool {
	dir, err := os.Open(s.ContainerDir(name))
	if err != nil {
		return false
	}
	defer dir.Close()
	return unix.Flock(int(dir.Fd()), unix.LOCK_SH|unix.LOCK_NB) == unix.EWOULDBLOCK
}
