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

// OOMNotifier returns a descriptor that becomes readable when the group
// may have had an OOM kill: on v1 an eventfd registered for the group's
// OOM notifications (cgroup.event_control with memory.oom_control), which
// the kernel signals when the group or one below it runs out of memory;
// on cgroup2 an inotify watch of memory.events, which changes on any
// memory event (high, max too), with count, the open memory.events, to
// tell an oom_kill from the others without waking anyone (nil on v1).
// Both descriptors are non-blocking and close-on-exec.
func (g *Group) OOMNotifier() (notify, count *os.File, err error) {
	d, ok := g.dirFor("memory")
	if !ok {
		return nil, nil, ErrNoMemoryController
	}
	if d.h.Version == 2 {
		return inotifyEvents(filepath.Join(d.path, "memory.events"))
	}
	notify, err = oomEventfd(d.path)
	return notify, nil, err
}

func oomEventfd(dir string) (*os.File, error) {
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
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

func inotifyEvents(path string) (notify, count *os.File, err error) {
	ifd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, nil, fmt.Errorf("watch %s: %w", path, err)
	}
	notify = os.NewFile(uintptr(ifd), "oom-inotify")
	if _, err := unix.InotifyAddWatch(ifd, path, unix.IN_MODIFY); err != nil {
		notify.Close()
		return nil, nil, fmt.Errorf("watch %s: %w", path, err)
	}
	if count, err = os.Open(path); err != nil {
		notify.Close()
		return nil, nil, err
	}
	return notify, count, nil
}
