package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultLimit is the size at which the log is rotated: about 20,000
// events; with the file before the rotation, the log keeps at most twice
// that on disk.
const DefaultLimit = 4 << 20

// File names in the log's directory.
const (
	currentName  = "events.jsonl"
	previousName = currentName + ".1"
)

// Log is the event log of one lodge root, in directory Dir.
type Log struct {
	Dir string
	// Limit is the size in bytes past which a writer rotates the log; 0
	// means DefaultLimit. Writers appending at the same moment may each
	// take the file past it by their line.
	Limit int64
}

// Open returns the log in dir (ROOT/events, store.EventsDir). It creates
// nothing: the first Append makes the directory.
func Open(dir string) *Log { return &Log{Dir: dir} }

func (l *Log) current() string  { return filepath.Join(l.Dir, currentName) }
func (l *Log) previous() string { return filepath.Join(l.Dir, previousName) }

func (l *Log) limit() int64 {
	if l.Limit > 0 {
		return l.Limit
	}
	return DefaultLimit
}

// Append writes e as one line (Time set to now if zero). Every process of
// the root may append at once: a line is one write(2) to a file opened
// with O_APPEND, which the kernel never interleaves with another, under a
// shared flock of the directory that only a rotation takes exclusively.
func (l *Log) Append(e Event) error {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.Time = e.Time.UTC()
	line, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("event log: %w", err)
	}
	line = append(line, '\n')
	if err := os.MkdirAll(l.Dir, 0o700); err != nil {
		return fmt.Errorf("event log: %w", err)
	}
	dir, err := os.Open(l.Dir)
	if err != nil {
		return fmt.Errorf("event log: %w", err)
	}
	defer dir.Close() // drops the flock
	if err := flock(dir, unix.LOCK_SH); err != nil {
		return fmt.Errorf("event log: lock %s: %w", l.Dir, err)
	}
	if l.full(int64(len(line))) {
		if err := l.rotate(dir, int64(len(line))); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(l.current(), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("event log: %w", err)
	}
	defer f.Close()
	if _, err := f.Write(line); err != nil {
		return fmt.Errorf("event log: write %s: %w", l.current(), err)
	}
	return nil
}

// full tells whether adding n bytes would take the current file past the limit.
func (l *Log) full(n int64) bool {
	fi, err := os.Stat(l.current())
	return err == nil && fi.Size() > 0 && fi.Size()+n > l.limit()
}

// rotate renames the current file to the previous one, under the
// exclusive flock: no writer is between its open and its write then, so
// the renamed file is complete when a follower sees the rename. Another
// writer may have rotated while this one waited for the lock: it checks
// again. The lock goes back to shared for the write that follows.
func (l *Log) rotate(dir *os.File, n int64) error {
	if err := flock(dir, unix.LOCK_EX); err != nil {
		return fmt.Errorf("event log: lock %s: %w", l.Dir, err)
	}
	if l.full(n) {
		if err := os.Rename(l.current(), l.previous()); err != nil {
			return fmt.Errorf("event log: rotate %s: %w", l.current(), err)
		}
	}
	if err := flock(dir, unix.LOCK_SH); err != nil {
		return fmt.Errorf("event log: lock %s: %w", l.Dir, err)
	}
	return nil
}

func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}
