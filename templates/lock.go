package templates

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// lock takes image id's lock, DIR/ID.lock, telling the user when another lodge
// holds it. The lock file exists only while it is held: the holder removes it
// before letting go, and a waiter that gets the lock of a file already removed
// (the holder removed it as the waiter opened it) tries again with a new one.
func (s *Images) lock(ctx context.Context, id string, report Reporter) (func(), error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	if err := s.prepareDir(); err != nil {
		return nil, err
	}
	path := filepath.Join(s.Dir, id+".lock")
	told := false
	for {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|unix.O_NOFOLLOW, 0o600)
		if err != nil {
			return nil, fmt.Errorf("lock image %s: %w", id, err)
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
			if !told {
				report.Step("waiting for another lodge that is building image %s", id)
				told = true
			}
			if err := flockContext(ctx, f); err != nil {
				f.Close()
				return nil, err
			}
		}
		if sameFile(f, path) {
			return func() { os.Remove(path); f.Close() }, nil
		}
		f.Close()
	}
}

// sameFile reports whether path still names the open file f.
func sameFile(f *os.File, path string) bool {
	var open, named unix.Stat_t
	if unix.Fstat(int(f.Fd()), &open) != nil || unix.Lstat(path, &named) != nil {
		return false
	}
	return open.Dev == named.Dev && open.Ino == named.Ino
}

// flockContext waits for an exclusive flock until ctx ends.
func flockContext(ctx context.Context, f *os.File) error {
	for {
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// checkID makes sure an image id is one plain file name, so that the paths
// made from it (DIR/ID, DIR/ID.lock, DIR/.ID.tmp-PID) stay in DIR whatever a
// template's options were.
func checkID(id string) error {
	bad := id == "" || len(id) > 200 || id[0] == '.' || id[0] == '-' || strings.ContainsFunc(id, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-._", r))
	})
	if bad {
		return fmt.Errorf("image id %q is not a plain file name (letters, digits, dashes, dots, underscores): %w", id, ErrBadName)
	}
	return nil
}
