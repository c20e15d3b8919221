package cgroup

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"lodge/internal/rawfile"
)

// writeFile writes value to an existing control file in one write(2). It
// never creates the file: a missing control file is fs.ErrNotExist.
// An empty value is written as a newline, which the kernel reads as empty.
func writeFile(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	if value == "" {
		value = "\n"
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// readFile returns a control file's content without surrounding white space,
// read with bare system calls (rawfile): a metrics scrape or a list reads a
// dozen control files per container.
func readFile(path string) (string, error) {
	data, err := rawfile.Read(path)
	return strings.TrimSpace(string(data)), err
}

func readInt(path string) (int64, error) {
	s, err := readFile(path)
	if err != nil {
		return 0, err
	}
	if s == "max" {
		return -1, nil
	}
	return strconv.ParseInt(s, 10, 64)
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// mkdir creates a cgroup directory; one that exists already is fine.
func mkdir(path string) error {
	err := os.Mkdir(path, 0o755)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	return err
}

// subdirs lists the child cgroups of dir. A vanished dir has none.
func subdirs(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if vanished(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out, nil
}

// walkDirs calls fn for dir and every cgroup below it, parents first.
// Cgroups that vanish during the walk are skipped.
func walkDirs(dir string, fn func(dir string) error) error {
	if err := fn(dir); err != nil {
		return err
	}
	children, err := subdirs(dir)
	if err != nil {
		return err
	}
	for _, c := range children {
		if err := walkDirs(c, fn); err != nil {
			return err
		}
	}
	return nil
}

// readPids reads a cgroup.procs file; a vanished cgroup has no processes.
func readPids(path string) ([]int, error) {
	data, err := os.ReadFile(path)
	if vanished(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(string(data)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			return nil, &fs.PathError{Op: "parse", Path: path, Err: err}
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// Polling: the kernel finishes a freeze or a kill in microseconds to a few
// milliseconds, so poll from 100µs doubling up to maxPoll, never a fixed long sleep.
const (
	minPoll = 100 * time.Microsecond
	maxPoll = 10 * time.Millisecond
)

type backoff struct{ d time.Duration }

// wait sleeps for the next interval or until ctx ends.
func (b *backoff) wait(ctx context.Context) error {
	b.d = min(max(2*b.d, minPoll), maxPoll)
	t := time.NewTimer(b.d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
