package monitor

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"lodge/config"
	"lodge/internal/cgroup"
	"lodge/internal/fds"
)

// A running container's monitor mostly waits. Doing that in Go costs about a
// megabyte of memory per container (the runtime's heap and metadata), so once
// a boot is complete the monitor executes lodge-helper's watch mode in place
// (cmd/lodge-helper/watch.c): the same process, still init's parent, now a
// small C loop that drains the console, answers ping, console and resize, and
// for anything else (stop) or when init exits executes `lodge __monitor ROOT
// NAME resume`, which carries on in Go from the runtime state.
//
//	lodge __monitor (Go) --boot--> idle: exec lodge-helper (watch)
//	      ^                               | stop request / init exited
//	      +-------- exec lodge __monitor ROOT NAME resume <-----+

const resumeArg = "resume"

// Descriptors handed back to Go by the watcher (see watch.c). The other way,
// their numbers are passed in $_LODGE_WATCH_FDS: placing them at fixed numbers
// in a running Go process would clobber the runtime's own (its epoll
// descriptor, say) while other threads still use them.
const (
	fdListener = 3
	fdMaster   = 4
	fdConn     = 5 // the connection of the pending request
)

// resumeRequestEnv carries the pending request line (without its newline).
const resumeRequestEnv = "_LODGE_RESUME_REQUEST"

// idle hands the monitor to the watcher. It returns only when it cannot: no
// helper, the container is stopping or gone, or a console client is attached
// to the Go monitor.
func (m *Monitor) idle(b *boot) {
	if m.helper == "" || m.isStopping() || !b.init.Alive() || !m.stopServing() {
		m.startServing()
		return
	}
	err := m.execWatcher(b)
	// Not reached unless the exec failed; its descriptors may be gone by now.
	m.log.Error("could not hand the monitor to the watcher; the container runs on without a monitor", "err", err)
	os.Exit(1)
}

// execWatcher arranges the watcher's descriptors and executes it.
func (m *Monitor) execWatcher(b *boot) error {
	if err := unix.Access(m.helper, unix.X_OK); err != nil {
		m.startServing()
		return fmt.Errorf("%s: %w", m.helper, err)
	}
	listener, err := m.ln.(*net.UnixListener).File()
	if err != nil {
		return err
	}
	exe, err := os.Open("/proc/self/exe")
	if err != nil {
		return err
	}
	history, err := historyFile(b.console.handOff())
	if err != nil {
		return err
	}
	files := []*os.File{listener, b.console.master, exe, history}
	env := append(os.Environ(), "_LODGE_WATCH=1", "_LODGE_WATCH_INIT="+strconv.Itoa(b.init.PID),
		"_LODGE_WATCH_LOG="+m.consoleLogPath())
	if oom := m.oomNotifier(b); oom != nil {
		files = append(files, oom.File)
		if oom.Unified() {
			env = append(env, oomUnifiedEnv+"=1")
		}
	}
	m.reportOOM(b) // kills before the notifier was there
	// The watcher gets these four (five with the OOM notifier) and nothing
	// else (see internal/fds).
	if err := fds.CloseOnExecFrom(3); err != nil {
		return err
	}
	fds, err := inheritable(files...)
	if err != nil {
		return err
	}
	m.log.Info("monitor goes idle", "watcher", m.helper)
	argv := []string{"lodge-monitor", "__monitor", m.store.Root, m.name, "watch"}
	return unix.Exec(m.helper, argv, append(env, "_LODGE_WATCH_FDS="+fds, m.oomSeenEnviron()))
}

func historyFile(data []byte) (*os.File, error) {
	fd, err := unix.MemfdCreate("console-history", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "console-history")
	if _, err := f.Write(data); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// inheritable duplicates files to new descriptors that survive an exec and
// returns their numbers, comma-separated.
func inheritable(files ...*os.File) (string, error) {
	nums := make([]string, len(files))
	for i, f := range files {
		fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD, 0)
		if err != nil {
			return "", err
		}
		nums[i] = strconv.Itoa(fd)
	}
	return strings.Join(nums, ","), nil
}

// resume carries on in Go where the watcher stopped: it answers the request
// the watcher handed over (if any) and watches the container as after a boot.
func (m *Monitor) resume() int {
	ln, err := net.FileListener(os.NewFile(fdListener, "monitor-socket"))
	if err != nil {
		m.log.Error("resume: monitor socket", "err", err)
		return 1
	}
	m.ln = ln
	b, err := m.resumeBoot()
	if err != nil {
		m.log.Error("resume", "err", err)
		return 1
	}
	go b.reap()
	m.setCurrent(b)
	m.log.Info("monitor resumes in Go")
	m.resumeOOM(b)
	m.startServing()
	m.takePending()
	return m.watch(b)
}

// takePending answers the request the watcher handed over, as one of the
// server's handlers, so the monitor does not go idle again under it. The
// watcher checked the line's grammar (it hands over whole lines only, without
// their newline); Go checks the operation and its arguments.
func (m *Monitor) takePending() {
	line := os.Getenv(resumeRequestEnv)
	os.Unsetenv(resumeRequestEnv)
	if line == "" {
		return
	}
	conn, err := net.FileConn(os.NewFile(fdConn, "request"))
	if err != nil {
		return
	}
	if req, err := decodeRequest([]byte(line)); err == nil && req.Op == OpStop {
		m.mu.Lock()
		m.stopping = true
		m.mu.Unlock()
	}
	s := m.serving
	s.handlers.Add(1)
	go func() {
		defer s.handlers.Done()
		m.handleLine(conn, []byte(line), nil)
	}()
}

// resumeBoot rebuilds the running boot from the runtime state and the
// descriptors the watcher handed over. init is still this process's child.
func (m *Monitor) resumeBoot() (*boot, error) {
	st, err := m.store.ReadState(m.name)
	if err != nil || st == nil {
		return nil, fmt.Errorf("no runtime state for %s: %v", m.name, err)
	}
	cfg, err := config.Load(m.store.ConfigPath(m.name))
	if err != nil {
		m.log.Warn("configuration unreadable; stopping with defaults", "err", err)
		cfg = config.Default()
	}
	proc, err := os.FindProcess(st.Init.PID)
	if err != nil {
		return nil, err
	}
	unix.SetNonblock(fdMaster, true)
	master := os.NewFile(fdMaster, "console-master")
	return &boot{
		cfg: cfg, group: cgroup.Open(st.Cgroups), proc: proc, init: st.Init,
		console: newConsoleRelay(master, m.consoleLogPath()), stopSignal: syscall.Signal(st.StopSignal),
		started: st.StartedAt, rootfsMode: st.RootfsMode, exited: make(chan struct{}),
	}, nil
}
