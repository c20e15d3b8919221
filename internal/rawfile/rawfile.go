// Package rawfile reads the small files lodge reads by the hundred (a
// container's config and state, /proc/PID/stat, cgroup control files) with
// bare system calls: open, read, close. os.ReadFile also stats the file and
// tries to register it with the network poller (fcntl, epoll_ctl), twice the
// calls, and `lodge list` of 500 containers reads about ten files each.
package rawfile

import (
	"errors"
	"io/fs"
	"slices"

	"golang.org/x/sys/unix"
)

// chunk is the first read's size: every file lodge reads this way fits.
const chunk = 4096

// Read returns the content of the file at path. Its errors are
// *fs.PathError, so errors.Is(err, fs.ErrNotExist) works as with os.ReadFile.
func Read(path string) ([]byte, error) {
	fd, err := retry(func() (int, error) { return unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0) })
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	data := make([]byte, 0, chunk)
	for {
		if len(data) == cap(data) {
			data = slices.Grow(data, chunk)
		}
		n, err := retry(func() (int, error) { return unix.Read(fd, data[len(data):cap(data)]) })
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return data, nil
		}
		data = data[:len(data)+n]
	}
}

// Locked tells whether the directory or file at path is locked (flock)
// exclusively by another open file: a shared lock taken without waiting
// fails. A path that cannot be opened is not locked.
func Locked(path string) bool {
	fd, err := retry(func() (int, error) { return unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0) })
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	err = unix.Flock(fd, unix.LOCK_SH|unix.LOCK_NB)
	return errors.Is(err, unix.EWOULDBLOCK)
}

// retry retries a system call the Go runtime's preemption signal
// interrupted, as package os does.
func retry(call func() (int, error)) (int, error) {
	for {
		n, err := call()
		if err != unix.EINTR {
			return n, err
		}
	}
}
