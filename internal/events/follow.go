package events

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
)

// pollInterval is how often a follower looks at the log when inotify
// cannot tell it (no inotify instance left, or an event it missed).
const pollInterval = time.Second

// Follow calls handle with each event of the log, in the order they were
// written, until ctx ends (it returns ctx's error) or handle fails (its
// error). It starts with the events since since that the log still holds
// (both files), or, with since zero, with the next event written. It
// survives rotations: each event is handed over exactly once, unless the
// log was rotated twice while handle was busy with one event, when the
// events of the file in between the two are lost (with the default limit,
// some 20,000 events). Lines that do not parse are skipped.
func (l *Log) Follow(ctx context.Context, since time.Time, handle func(Event) error) error {
	return l.follow(ctx, since, handle, func() {})
}

// follow is Follow that calls ready once it is in place: an event
// appended after ready reaches handle.
func (l *Log) follow(ctx context.Context, since time.Time, handle func(Event) error, ready func()) error {
	wake, stop := l.watch()
	defer stop()
	r := &reader{log: l, handle: handle, since: since}
	if err := r.open(since.IsZero()); err != nil {
		return err
	}
	defer r.close()
	ready()
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	for {
		if err := r.catchUp(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		case <-ticker.C:
		}
	}
}

// watch returns a channel that receives when something changes in the
// log's directory (inotify), and a function that ends the watch. Without
// inotify (or the directory), the channel never receives: the ticker polls.
func (l *Log) watch() (<-chan struct{}, func()) {
	wake := make(chan struct{}, 1)
	os.MkdirAll(l.Dir, 0o700) // a follower may come before the first event
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return wake, func() {}
	}
	if err := w.Add(l.Dir); err != nil {
		w.Close()
		return wake, func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case _, ok := <-w.Events:
				if !ok {
					return
				}
				select {
				case wake <- struct{}{}:
				default: // a wake is pending already
				}
			case _, ok := <-w.Errors:
				if !ok {
					return
				}
			}
		}
	}()
	return wake, func() { w.Close(); <-done }
}

// reader is a follower's position: the file it reads (the current log as
// it was when opened) and the bytes of a line not yet complete.
type reader struct {
	log     *Log
	handle  func(Event) error
	since   time.Time
	f       *os.File // nil while the log has no current file
	ino     uint64
	partial []byte
}

// open positions the reader: at the end of the current file (atEnd), or
// after replaying what the log holds since r.since.
func (r *reader) open(atEnd bool) error {
	if err := r.openCurrent(); err != nil {
		return err
	}
	if atEnd {
		if r.f != nil {
			if _, err := r.f.Seek(0, io.SeekEnd); err != nil {
				return fmt.Errorf("event log: %w", err)
			}
		}
		return nil
	}
	// The previous file, unless it is the one just opened (a rotation
	// came in between: then the one before it is older than what we read).
	if prev, ino, err := openFile(r.log.previous()); err == nil && prev != nil {
		defer prev.Close()
		if ino != r.ino {
			if err := r.drain(prev); err != nil {
				return err
			}
			r.partial = nil
		}
	}
	return nil
}

func (r *reader) close() {
	if r.f != nil {
		r.f.Close()
	}
}

// openCurrent opens the current file from its start (none yet: r.f nil).
func (r *reader) openCurrent() error {
	f, ino, err := openFile(r.log.current())
	if err != nil {
		return err
	}
	r.f, r.ino, r.partial = f, ino, nil
	return nil
}

// openFile opens path for reading with its inode number; a missing file is
// no error (nil file).
func openFile(path string) (*os.File, uint64, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("event log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("event log: %w", err)
	}
	return f, fi.Sys().(*syscall.Stat_t).Ino, nil
}

// catchUp hands over every complete line written since the last call,
// following the log into a new file when it was rotated.
func (r *reader) catchUp() error {
	for {
		if r.f != nil {
			if err := r.drain(r.f); err != nil {
				return err
			}
		}
		rotated, err := r.rotated()
		if err != nil || !rotated {
			return err
		}
		if err := r.follow(); err != nil {
			return err
		}
	}
}

// rotated tells whether the current file is no longer the one being read.
// Read after the file was drained: a rename seen now came after every
// write to the old file (writers append under the lock the rotation takes
// exclusively), so nothing is left in it past what was read.
func (r *reader) rotated() (bool, error) {
	fi, err := os.Stat(r.log.current())
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("event log: %w", err)
	}
	return r.f == nil || fi.Sys().(*syscall.Stat_t).Ino != r.ino, nil
}

// follow moves to the new current file: it drains what is left of the
// old one, then a previous file that is neither (the log was rotated
// twice since the last look), and opens the new current file at its start.
func (r *reader) follow() error {
	if r.f != nil {
		if err := r.drain(r.f); err != nil {
			return err
		}
		r.f.Close()
		r.f = nil
	}
	old := r.ino
	if err := r.openCurrent(); err != nil {
		return err
	}
	if prev, ino, err := openFile(r.log.previous()); err == nil && prev != nil {
		defer prev.Close()
		if old != 0 && ino != old && ino != r.ino {
			r.partial = nil
			return r.drain(prev)
		}
	}
	return nil
}

// drain hands over the complete lines of f from its position on; the
// start of a line not yet complete is kept for the next call.
func (r *reader) drain(f *os.File) error {
	br := bufio.NewReader(f)
	for {
		chunk, err := br.ReadBytes('\n')
		if len(chunk) > 0 && chunk[len(chunk)-1] != '\n' {
			r.partial = append(r.partial, chunk...)
		} else if len(chunk) > 0 {
			line := chunk
			if len(r.partial) > 0 {
				line = append(r.partial, chunk...)
				r.partial = nil
			}
			if herr := r.deliver(bytes.TrimSpace(line)); herr != nil {
				return herr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("event log: %w", err)
		}
	}
}

func (r *reader) deliver(line []byte) error {
	if len(line) == 0 {
		return nil
	}
	e, err := Decode(line)
	if err != nil || (!r.since.IsZero() && e.Time.Before(r.since)) {
		return nil
	}
	return r.handle(e)
}
