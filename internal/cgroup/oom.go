package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrNoMemoryController: the host gives the group no memory controller, so
// OOM kills can be neither counted nor watched.
var ErrNoMemoryController = errors.New("no memory controller for the group")

// OOMKills counts the processes the kernel's OOM killer killed in the group
// and every group below it. cgroup2 counts them up the tree for us
// (memory.events, oom_kill); the v1 controller counts each in the group
// the victim was in (memory.oom_control, oom_kill), so the tree is summed
// (a systemd guest's processes are in groups below the container's).
func (g *Group) OOMKills() (uint64, error) {
	d, ok := g.dirFor("memory")
	if !ok {
		return 0, ErrNoMemoryController
	}
	if d.h.Version == 2 {
		return oomKillField(filepath.Join(d.path, "memory.events"))
	}
	var total uint64
	err := filepath.WalkDir(d.path, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			if path != d.path && errors.Is(err, fs.ErrNotExist) {
				return nil // a group removed meanwhile
			}
			return err
		}
		if !e.IsDir() {
			return nil
		}
		n, err := oomKillField(filepath.Join(path, "memory.oom_control"))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		total += n
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("count OOM kills of cgroup %s: %w", g.name, err)
	}
	return total, nil
}

// oomKillField reads the "oom_kill N" line of memory.events (v2) or
// memory.oom_control (v1).
func oomKillField(path string) (uint64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("%s has no oom_kill line (a kernel before 4.13?)", path)
}

// OOMNotifier tells when the group may have had an OOM kill. It costs one
// descriptor and no other kernel object: no inotify instance, of which a
// user has only fs.inotify.max_user_instances (128 by default), far fewer
// than a host's containers.
type OOMNotifier struct {
	// File is, on v1, an eventfd registered for the group's OOM
	// notifications (cgroup.event_control with memory.oom_control), which
	// the kernel signals (POLLIN) when the group or one below it runs out
	// of memory. On cgroup2 it is the group's memory.events itself: the
	// kernel wakes its pollers with POLLPRI whenever the file changes
	// (cgroup_file_notify, on any memory event: low, high, max, oom,
	// oom_kill), and a read of it re-arms that; its oom_kill line tells a
	// kill from the other events without waking anyone. Close-on-exec, and
	// blocking: it is read once poll(2) said it has news (the runtime's
	// poller, which a non-blocking one would join, knows no POLLPRI).
	File *os.File
	// Events is the poll(2) event that means news: POLLIN on v1, POLLPRI
	// on cgroup2.
	Events int16
}

// Unified tells whether File is cgroup2's memory.events (read it for the
// count) rather than a v1 eventfd (read it to drain it).
func (n *OOMNotifier) Unified() bool { return n.Events == unix.POLLPRI }

// OOMNotifier opens the group's OOM notification.
func (g *Group) OOMNotifier() (*OOMNotifier, error) {
	d, ok := g.dirFor("memory")
	if !ok {
		return nil, ErrNoMemoryController
	}
	if d.h.Version == 2 {
		return notifyOnChange(filepath.Join(d.path, "memory.events"))
	}
	notify, err := oomEventfd(d.path)
	if err != nil {
		return nil, err
	}
	return &OOMNotifier{File: notify, Events: unix.POLLIN}, nil
}

// notifyOnChange opens a cgroup2 file whose changes the kernel notifies
// (memory.events, cgroup.events, ...) to be polled for POLLPRI.
func notifyOnChange(path string) (*OOMNotifier, error) {
	// Blocking, so that os.NewFile keeps it out of the runtime's poller.
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", path, err)
	}
	return &OOMNotifier{File: os.NewFile(uintptr(fd), path), Events: unix.POLLPRI}, nil
}

// Wait blocks until the notifier has news or stop (a pipe's read end, say)
// is readable or closed at its other end, and tells which. On news it
// consumes the notification: it drains the eventfd (v1) or reads
// memory.events (cgroup2), which arms the next one.
func (n *OOMNotifier) Wait(stop *os.File) (news bool, err error) {
	fds := []unix.PollFd{{Fd: int32(n.File.Fd()), Events: n.Events}, {Fd: int32(stop.Fd()), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(fds, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("wait for OOM notifications: %w", err)
		}
		if fds[0].Revents != 0 {
			n.consume()
			return true, nil
		}
		if fds[1].Revents != 0 {
			return false, nil
		}
	}
}

func (n *OOMNotifier) consume() {
	buf := make([]byte, 4096)
	if n.Unified() {
		n.File.ReadAt(buf, 0) // a read re-arms the POLLPRI
		return
	}
	n.File.Read(buf) // one read takes an eventfd's whole count
}

func oomEventfd(dir string) (*os.File, error) {
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("OOM notification of %s: eventfd: %w", dir, err)
	}
	notify := os.NewFile(uintptr(efd), "oom-eventfd")
	control, err := os.Open(filepath.Join(dir, "memory.oom_control"))
	if err != nil {
		notify.Close()
		return nil, fmt.Errorf("OOM notification of %s: %w", dir, err)
	}
	defer control.Close() // the registration holds the group, not this file
	if err := writeFile(filepath.Join(dir, "cgroup.event_control"), fmt.Sprintf("%d %d", efd, control.Fd())); err != nil {
		notify.Close()
		return nil, fmt.Errorf("OOM notification of %s: %w", dir, err)
	}
	return notify, nil
}
