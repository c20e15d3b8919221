package cgroup

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// freezer is how a group is frozen: cgroup2's cgroup.freeze or the v1 freezer
// controller.
type freezer interface {
	freeze(ctx context.Context) error
	thaw() error
	frozen() (bool, error)
}

// freezer picks the group's freezer: cgroup2's core freezer when the group
// has one (on hybrid hosts too: it needs no controller), else the v1 freezer
// hierarchy, else nil.
func (g *Group) freezer() freezer {
	if d, ok := g.unified(); ok && exists(filepath.Join(d.path, "cgroup.freeze")) {
		return v2Freezer{d.path}
	}
	if fr, ok := g.v1Freezer(); ok {
		return fr
	}
	return nil
}

func (g *Group) v1Freezer() (v1Freezer, bool) {
	if d, ok := g.dirFor("freezer"); ok && d.h.Version == 1 {
		return v1Freezer{d.path}, true
	}
	return v1Freezer{}, false
}

func (g *Group) needFreezer() (freezer, error) {
	fr := g.freezer()
	if fr == nil {
		if !g.Exists() {
			return nil, fmt.Errorf("cgroup %s: %w", g.name, fs.ErrNotExist)
		}
		return nil, fmt.Errorf("freeze cgroup %s: no cgroup2 freezer and no v1 freezer hierarchy: %w", g.name, ErrUnsupported)
	}
	return fr, nil
}

// Freeze stops every process of the group and waits until all are frozen. If
// ctx ends first (a task stuck in the kernel keeps a v1 freezer in FREEZING),
// the group is thawed again and the error says so.
func (g *Group) Freeze(ctx context.Context) error {
	fr, err := g.needFreezer()
	if err != nil {
		return err
	}
	if err := fr.freeze(ctx); err != nil {
		return fmt.Errorf("freeze cgroup %s: %w", g.name, err)
	}
	return nil
}

// Thaw lets the group's processes run again.
func (g *Group) Thaw() error {
	fr, err := g.needFreezer()
	if err != nil {
		return err
	}
	if err := fr.thaw(); err != nil {
		return fmt.Errorf("thaw cgroup %s: %w", g.name, err)
	}
	return nil
}

// Frozen reports whether the group is completely frozen.
func (g *Group) Frozen() (bool, error) {
	fr, err := g.needFreezer()
	if err != nil {
		return false, err
	}
	ok, err := fr.frozen()
	if err != nil {
		return false, fmt.Errorf("freezer state of cgroup %s: %w", g.name, err)
	}
	return ok, nil
}

// FreezeRequested reports whether a freeze of the group was asked for,
// complete or not (a task stuck, or the freezing lodge killed).
func (g *Group) FreezeRequested() (bool, error) {
	fr, err := g.needFreezer()
	if err != nil {
		return false, err
	}
	r, ok := fr.(interface{ requested() (bool, error) })
	if !ok {
		return fr.frozen()
	}
	return r.requested()
}

// waitFrozen waits until the freezer reports frozen: on cgroup.events
// (inotify) for cgroup2, by polling with a short growing backoff for v1,
// which has no event. If ctx ends first, the tasks that did not freeze are
// recorded (while they still hang) and the group is thawed again: the error
// is a *NotFrozenError.
func waitFrozen(ctx context.Context, fr freezer) error {
	var err error
	if w, ok := fr.(interface{ wait(context.Context) error }); ok {
		err = w.wait(ctx)
	} else {
		err = pollFrozen(ctx, fr)
	}
	if err == nil || ctx.Err() == nil {
		return err
	}
	nf := &NotFrozenError{Err: err}
	if d, ok := fr.(interface{ dir() string }); ok {
		nf.Tasks = unfrozenTasks(d.dir())
	}
	_, nf.InPlace = fr.(v1Freezer)
	if terr := fr.thaw(); terr != nil {
		nf.ThawErr = terr
	}
	return nf
}

// pollFrozen polls the freezer's state from 100µs, doubling up to 10 ms.
func pollFrozen(ctx context.Context, fr freezer) error {
	var b backoff
	for {
		ok, err := fr.frozen()
		if err != nil || ok {
			return err
		}
		if err := b.wait(ctx); err != nil {
			return err
		}
	}
}

// NotFrozenError says that a group did not freeze before its deadline, and
// which tasks had not frozen then and where they were stuck in the kernel.
// The group was thawed again (unless ThawErr says otherwise).
type NotFrozenError struct {
	Err     error // ctx's error
	Tasks   []StuckTask
	ThawErr error
	// InPlace: the v1 freezer freezes a task asleep in a freezable wait
	// where it is (state D, its wchan unchanged), which /proc cannot tell
	// from a task stuck there: Tasks may list such frozen tasks too.
	InPlace bool
}

// StuckTask is a task that had not frozen: its pid (tid for a thread),
// name, and where it waits in the kernel (its kernel stack if readable,
// else its wchan).
type StuckTask struct {
	PID   int
	TID   int // equal to PID for the main thread
	Comm  string
	State string // as /proc/PID/stat has it: D, R, S...
	Where string
}

func (t StuckTask) String() string {
	who := fmt.Sprintf("%s (pid %d", t.Comm, t.PID)
	if t.TID != t.PID {
		who += fmt.Sprintf(", thread %d", t.TID)
	}
	who += ", state " + t.State + ")"
	if t.Where == "" {
		return who + " (not waiting in the kernel)"
	}
	return who + " in " + t.Where
}

func (e *NotFrozenError) Error() string {
	msg := "not frozen in time"
	if len(e.Tasks) > 0 {
		var tasks []string
		for _, t := range e.Tasks {
			tasks = append(tasks, t.String())
		}
		if e.InPlace {
			msg += "; not in the v1 freezer's refrigerator (some may be frozen in place): "
		} else {
			msg += "; not frozen: "
		}
		msg += strings.Join(tasks, "; ")
	} else {
		msg += " (every task had frozen by the time it was checked)"
	}
	if e.ThawErr != nil {
		return fmt.Sprintf("%s; thawing again failed: %v: %v", msg, e.ThawErr, e.Err)
	}
	return fmt.Sprintf("%s; thawed again: %v", msg, e.Err)
}

func (e *NotFrozenError) Unwrap() error { return e.Err }

// frozenWchans are where a frozen task waits: the cgroup2 freezer's trap
// (do_freezer_trap, inlined into get_signal on 6.x kernels: a task asleep
// there in state S is in the trap; stopped ones are T), the v1 freezer's
// refrigerator, and the waits both count as frozen (a stopped or traced
// task, a vfork parent).
var frozenWchans = map[string]bool{
	"do_freezer_trap": true, "get_signal": true, "__refrigerator": true, "do_signal_stop": true,
	"ptrace_stop": true, "wait_for_vfork_done": true,
}

// unfrozenTasks lists the tasks of the cgroup tree at dir that are not where
// a frozen task waits.
func unfrozenTasks(dir string) []StuckTask {
	var out []StuckTask
	walkDirs(dir, func(d string) error {
		pids, _ := readPids(filepath.Join(d, "cgroup.procs"))
		for _, pid := range pids {
			tids, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
			for _, e := range tids {
				tid, err := strconv.Atoi(e.Name())
				if err != nil {
					continue
				}
				if t, ok := taskIfUnfrozen(pid, tid); ok {
					out = append(out, t)
				}
			}
		}
		return nil
	})
	return out
}

// taskIfUnfrozen reads where task tid of process pid waits.
func taskIfUnfrozen(pid, tid int) (StuckTask, bool) {
	base := fmt.Sprintf("/proc/%d/task/%d/", pid, tid)
	wchan, _ := readFile(base + "wchan")
	if wchan == "0" {
		wchan = ""
	}
	if frozenWchans[wchan] {
		return StuckTask{}, false
	}
	t := StuckTask{PID: pid, TID: tid, Where: wchan}
	t.Comm, _ = readFile(base + "comm")
	if stat, err := readFile(base + "stat"); err == nil {
		// pid (comm) STATE ...: comm may hold spaces and parentheses.
		if i := strings.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
			t.State = stat[i+2 : i+3]
		}
	}
	if t.State == "T" || t.State == "t" {
		return StuckTask{}, false // stopped: counted as frozen
	}
	if stack, err := readFile(base + "stack"); err == nil && stack != "" {
		t.Where = kernelStack(stack)
	}
	return t, true
}

// kernelStack turns /proc/PID/stack ("[<0>] fuse_get_req+0x1a/0x2b0") into
// one line: "fuse_get_req <- fuse_simple_request <- ...".
func kernelStack(stack string) string {
	var frames []string
	for _, line := range strings.Split(stack, "\n") {
		f := strings.TrimSpace(line)
		if i := strings.IndexByte(f, ']'); i >= 0 {
			f = strings.TrimSpace(f[i+1:])
		}
		if i := strings.IndexByte(f, '+'); i > 0 {
			f = f[:i]
		}
		if f == "" {
			continue
		}
		if len(frames) == 8 {
			frames = append(frames, "...")
			break
		}
		frames = append(frames, f)
	}
	return strings.Join(frames, " <- ")
}

// v2Freezer is cgroup2's cgroup.freeze, with the state in cgroup.events.
type v2Freezer struct{ path string }

func (f v2Freezer) freeze(ctx context.Context) error {
	if err := writeFile(filepath.Join(f.path, "cgroup.freeze"), "1"); err != nil {
		return err
	}
	return waitFrozen(ctx, f)
}

func (f v2Freezer) dir() string { return f.path }

func (f v2Freezer) requested() (bool, error) {
	s, err := readFile(filepath.Join(f.path, "cgroup.freeze"))
	return s == "1", err
}

// wait waits for cgroup.events to say frozen, woken by the kernel's
// notification of each change (inotify IN_MODIFY); where inotify is not
// available, it polls.
func (f v2Freezer) wait(ctx context.Context) error {
	events := filepath.Join(f.path, "cgroup.events")
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return pollFrozen(ctx, f)
	}
	defer unix.Close(fd)
	if _, err := unix.InotifyAddWatch(fd, events, unix.IN_MODIFY); err != nil {
		return pollFrozen(ctx, f)
	}
	buf := make([]byte, 4096)
	for {
		// Read after the watch is in place: a change in between is seen.
		ok, err := f.frozen()
		if err != nil || ok {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		// Wake at least every maxWait to notice ctx's end.
		timeout := maxWait
		if dl, ok := ctx.Deadline(); ok {
			timeout = min(timeout, max(time.Until(dl), time.Millisecond))
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, int(timeout.Milliseconds())); err != nil && err != unix.EINTR {
			return pollFrozen(ctx, f)
		}
		for {
			if _, err := unix.Read(fd, buf); err != nil {
				break // drained (EAGAIN)
			}
		}
	}
}

// maxWait bounds one wait for an event, so that a cancelled ctx is seen.
const maxWait = 50 * time.Millisecond

func (f v2Freezer) thaw() error { return writeFile(filepath.Join(f.path, "cgroup.freeze"), "0") }

func (f v2Freezer) frozen() (bool, error) {
	events, err := readFile(filepath.Join(f.path, "cgroup.events"))
	if err != nil {
		return false, err
	}
	return eventsFrozen(events), nil
}

// eventsFrozen reads the "frozen" key of cgroup.events.
func eventsFrozen(events string) bool {
	for _, line := range strings.Split(events, "\n") {
		if k, v, _ := strings.Cut(line, " "); k == "frozen" {
			return v == "1"
		}
	}
	return false
}

// v1Freezer is the v1 freezer controller's freezer.state: THAWED, FREEZING
// or FROZEN.
type v1Freezer struct{ path string }

func (f v1Freezer) freeze(ctx context.Context) error {
	if err := writeFile(filepath.Join(f.path, "freezer.state"), "FROZEN"); err != nil {
		return err
	}
	return waitFrozen(ctx, f)
}

func (f v1Freezer) dir() string { return f.path }

func (f v1Freezer) requested() (bool, error) {
	s, err := readFile(filepath.Join(f.path, "freezer.state"))
	return s != "THAWED", err
}

func (f v1Freezer) thaw() error { return writeFile(filepath.Join(f.path, "freezer.state"), "THAWED") }

func (f v1Freezer) frozen() (bool, error) {
	s, err := readFile(filepath.Join(f.path, "freezer.state"))
	return s == "FROZEN", err
}

// FreezerDir is the directory of the group's freezer (cgroup2's, with
// cgroup.freeze, or the v1 freezer's, with freezer.state), for a program
// that freezes the group itself (CRIU's freeze_cgroup); "" when it has none.
func (g *Group) FreezerDir() string {
	switch fr := g.freezer().(type) {
	case v2Freezer:
		return fr.dir()
	case v1Freezer:
		return fr.dir()
	}
	return ""
}
