// Package monitor is the per-container monitor: the lodge binary re-executed
// (`lodge __monitor ROOT NAME`), detached from the CLI that started it. It is
// the parent of the container's init, holds its console, answers requests on
// ROOT/run/NAME.sock, restarts the container when the guest reboots itself, and
// tears everything down when init exits. It does not own the container's life:
// if the monitor is killed, the container keeps running and other lodge
// commands find it through ROOT/run/NAME.json.
package monitor

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"lodge/config"
	"lodge/internal/cgroup"
	"lodge/internal/events"
	"lodge/internal/helper"
	"lodge/internal/idmap"
	"lodge/internal/store"
)

// statusFD is the pipe to the CLI that started the monitor (its first ExtraFile).
const statusFD = 3

// Monitor watches over one container.
type Monitor struct {
	store   *store.Store
	name    string
	host    *config.Host
	cgroups *cgroup.Host // the host as the base offers it (Base.Host)
	base    *cgroup.Base
	ids     idmap.Range
	helper  string // lodge-helper; "" when missing (slower start)
	log     *slog.Logger
	logFile *os.File
	status  *statusPipe
	ln      net.Listener

	mu       sync.Mutex
	current  *boot
	stopping bool
	killed   bool          // the stop asked for had to kill the container
	serving  *server       // the Go side of the socket; nil while not serving
	finished chan struct{} // closed when the container is down and cleaned up
	replies  sync.WaitGroup

	oomMu   sync.Mutex
	oomSeen uint64 // the OOM kills of this boot reported so far (oom.go)
}

// Main runs the monitor; args are ROOT and NAME, then "resume" when the idle
// watcher (see idle.go) hands the monitor back to Go, "oom" for the watcher's
// short-lived OOM reporter (oom.go), or "restore DIR" to bring the container
// back from a checkpoint (restore.go). It returns the exit status.
func Main(args []string) int {
	if len(args) == 3 && args[2] == oomReportArg {
		return reportOOMMain(args[0], args[1])
	}
	resume := len(args) == 3 && args[2] == resumeArg
	restore := (len(args) == 4 || len(args) == 5 && args[4] == frozenArg) && args[2] == restoreArg
	status := &statusPipe{}
	if !resume {
		status.f = os.NewFile(statusFD, "status")
	}
	if len(args) != 2 && !resume && !restore {
		status.fail(fmt.Errorf("usage: lodge __monitor ROOT NAME [restore DIR [frozen]]"))
		return 2
	}
	m, err := newMonitor(args[0], args[1], status)
	if err != nil {
		status.fail(err)
		fmt.Fprintln(os.Stderr, "monitor:", err)
		return 1
	}
	if resume {
		return m.resume()
	}
	if restore {
		return m.runRestore(args[3], len(args) == 5)
	}
	return m.run()
}

func newMonitor(root, name string, status *statusPipe) (*Monitor, error) {
	st, err := store.Open(root)
	if err != nil {
		return nil, err
	}
	m := &Monitor{store: st, name: name, status: status, finished: make(chan struct{})}
	if err := m.openLog(); err != nil {
		return nil, err
	}
	if m.host, err = config.LoadHost(config.HostConfigPath()); err != nil {
		return nil, err
	}
	if m.base, err = CgroupBase(m.host); err != nil {
		return nil, err
	}
	m.cgroups = m.base.Host()
	if m.ids, err = lookupRange(st, m.host, name); err != nil {
		return nil, err
	}
	m.helper = findHelper(m.log)
	return m, nil
}

func (m *Monitor) openLog() error {
	dir := m.store.LogDir(m.name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create log directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "monitor.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open monitor log: %w", err)
	}
	m.logFile = f
	m.log = slog.New(slog.NewTextHandler(f, nil)).With("container", m.name)
	return nil
}

func lookupRange(st *store.Store, host *config.Host, name string) (idmap.Range, error) {
	pool := idmap.Pool{First: host.IDMap.First, Size: host.IDMap.Size, Count: host.IDMap.Count}
	r, ok, err := idmap.Open(st.IDMapPath(), pool).Lookup(name)
	if err != nil {
		return idmap.Range{}, err
	}
	if !ok {
		return idmap.Range{}, fmt.Errorf("container %q has no id range in %s; delete and create it again", name, st.IDMapPath())
	}
	return r, nil
}

// run boots the container, reports to the CLI, and watches it. Requests on
// the socket wait in its backlog until the monitor goes idle (or serves them).
//
// The monitor, not the CLI, reports the start: once init runs, before the
// CLI hears of it (so before anything the CLI does next) and before the
// monitor can report init's end, so "started" always comes before its
// "stopped", however long the CLI then waits (for systemd, say) and even if
// it is interrupted. A restore (runRestore) reports itself as restored or
// migrated instead, from the lodge that asked for it.
func (m *Monitor) run() int {
	return m.runWith(func() (*boot, error) {
		b, err := m.boot()
		if err == nil {
			m.emit(events.Event{Type: events.Started})
		}
		return b, err
	}, "boot")
}

// runWith runs the monitor around first, which brings the container up
// (a boot, or a restore), and names it what in the log.
func (m *Monitor) runWith(first func() (*boot, error), what string) int {
	if err := m.joinCgroup(); err != nil {
		m.status.fail(err)
		return 1
	}
	if err := m.listen(); err != nil {
		m.status.fail(err)
		return 1
	}
	b, err := first()
	if err != nil {
		m.log.Error(what+" failed", "err", err)
		m.finish()
		m.status.fail(err)
		return 1
	}
	m.status.ready(b.init.PID)
	return m.watch(b)
}

// watch waits until the container is down for good, booting it again when the
// guest rebooted itself.
func (m *Monitor) watch(b *boot) int {
	for {
		m.idle(b) // returns only if the monitor cannot go idle
		stopOOM := m.watchOOM(b)
		<-b.exited
		stopOOM()
		m.reportOOM(b) // before the group goes: a kill may be why init ended
		reboot := b.rebootRequested() && !m.isStopping()
		m.log.Info("init exited", "status", describeWait(b.wait), "reboot", reboot)
		m.teardown(b)
		m.emit(m.stoppedEvent(b, reboot))
		if !reboot {
			break
		}
		var err error
		if b, err = m.boot(); err != nil {
			m.log.Error("reboot failed", "err", err)
			break
		}
		m.oomMu.Lock()
		m.oomSeen = 0 // a new cgroup
		m.oomMu.Unlock()
		m.emit(events.Event{Type: events.Started, Reason: events.ReasonReboot})
	}
	m.finish()
	return 0
}

// finish removes the runtime state and lets pending stop requests answer.
func (m *Monitor) finish() {
	m.detachNICs(true) // before the state: whoever finds no state finds no NICs either
	m.store.RemoveState(m.name)
	if m.ln != nil {
		m.ln.Close()
	}
	close(m.finished)
	waitTimeout(&m.replies, 2*time.Second)
	m.leaveCgroup()
	m.log.Info("monitor exits")
}

// joinCgroup moves the monitor into its group, BASE/.monitor/NAME, when the
// manager could not start it there (no lodge-helper: see Manager.runMonitor).
func (m *Monitor) joinCgroup() error {
	g := m.base.MonitorGroup(m.name)
	if m.inOwnGroup(g) {
		return nil
	}
	if err := g.AddProcess(os.Getpid()); err != nil {
		return fmt.Errorf("move the monitor into its cgroup: %w", err)
	}
	return nil
}

// inOwnGroup tells whether this process is in g on every hierarchy.
func (m *Monitor) inOwnGroup(g *cgroup.Group) bool {
	p, err := m.cgroups.ProcessPlacement(os.Getpid())
	return err == nil && p.Unified == g.Placement().Unified && slices.Equal(p.Tasks, g.Placement().Tasks)
}

// leaveCgroup removes the monitor's group as the monitor exits: it moves
// itself to the group's parent first (a cgroup with a process cannot be
// removed). A new monitor of the same container may have joined the group
// meanwhile: then the group stays, busy.
//
// A thread of ours that was exiting during the move (a failed boot's stage
// thread) is not moved and keeps the group busy until it is gone: the move
// is tried again while only this process is left in the group.
func (m *Monitor) leaveCgroup() {
	g := m.base.MonitorGroup(m.name)
	for try := 0; ; try++ {
		if err := g.Leave(os.Getpid()); err != nil {
			m.log.Warn("leave the monitor's cgroup", "err", err)
			return
		}
		err := g.Destroy()
		if err == nil || !errors.Is(err, cgroup.ErrBusy) {
			if err != nil {
				m.log.Warn("remove the monitor's cgroup", "err", err)
			}
			return
		}
		if pids, _ := g.Procs(); try == 50 || !slices.Equal(pids, []int{os.Getpid()}) {
			return // another monitor of the container took the group over
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (m *Monitor) isStopping() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stopping
}

func waitTimeout(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
}

func describeWait(ws syscall.WaitStatus) string {
	switch {
	case ws.Exited():
		return fmt.Sprintf("exit %d", ws.ExitStatus())
	case ws.Signaled():
		return "signal " + ws.Signal().String()
	}
	return fmt.Sprintf("wait status %#x", int(ws))
}

// findHelper locates lodge-helper next to this binary. Without it containers
// still start, a few milliseconds slower, and the monitor stays in Go while idle.
func findHelper(log *slog.Logger) string {
	self, err := os.Executable()
	if err == nil {
		var helperPath string
		if helperPath, err = helper.FindHelper(self); err == nil {
			return helperPath
		}
	}
	log.Warn("starting containers without the helper", "err", err)
	return ""
}
