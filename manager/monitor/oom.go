package monitor

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"lodge/internal/cgroup"
	"lodge/internal/events"
	"lodge/internal/store"
)

// OOM kills are the kernel's news, not lodge's: the monitor watches the
// container's memory cgroup and reports each kill it counts as an oom
// event. While idle, the watcher (cmd/lodge-helper/watch.c) polls the
// descriptor of cgroup.Group.OOMNotifier beside init and the socket, and
// when a kill may have happened (on cgroup2 only once memory.events'
// oom_kill passed the count reported, $_LODGE_OOM_SEEN) it starts a
// reporter: a child executing `lodge-monitor __monitor ROOT NAME oom`
// (reportOOMMain), which counts, reports, writes the count back and exits,
// while the watcher goes on watching. The watcher itself stays: a hand-over
// to Go would drop the console's clients and its history. A monitor that
// stays in Go reads the notifier in a goroutine (watchOOM).

// oomReportArg is the reporter's mode; its descriptor 3 (oomCountFD) is a
// pipe to the watcher, which reads the count reported from it.
const (
	oomReportArg = "oom"
	oomCountFD   = 3
)

// oomSeenEnv carries the kills already reported across the watcher and to
// its reporters; oomUnifiedEnv tells the watcher that its notifier is
// cgroup2's memory.events (poll it for POLLPRI, read the count from it),
// not a v1 eventfd.
const (
	oomSeenEnv    = "_LODGE_OOM_SEEN"
	oomUnifiedEnv = "_LODGE_OOM_UNIFIED"
)

// reportOOMMain is the watcher's OOM reporter: it reports the kills since
// $_LODGE_OOM_SEEN (reading the count again for up to a second: the v1
// notification comes before the kill is counted) and writes the new count
// to the watcher. It opens only the store and the monitor's log: it runs
// beside the watcher, briefly, on every notification.
func reportOOMMain(root, name string) int {
	out := os.NewFile(oomCountFD, "oom-count")
	st, err := store.Open(root)
	if err != nil {
		fmt.Fprintln(os.Stderr, "monitor: oom report:", err)
		return 1
	}
	m := &Monitor{store: st, name: name, status: &statusPipe{}}
	if err := m.openLog(); err != nil {
		fmt.Fprintln(os.Stderr, "monitor: oom report:", err)
		return 1
	}
	state, err := st.ReadState(name)
	if err != nil || state == nil {
		m.log.Warn("OOM report: no runtime state", "err", err)
		return 1
	}
	if n, err := strconv.ParseUint(os.Getenv(oomSeenEnv), 10, 64); err == nil {
		m.oomSeen = n
	}
	m.reportNotifiedOOM(&boot{group: cgroup.Open(state.Cgroups)})
	if _, err := fmt.Fprintf(out, "%d\n", m.oomSeen); err != nil {
		m.log.Warn("OOM report: tell the watcher the count", "err", err)
		return 1
	}
	return 0
}

// oomCountLag is how long reportNotifiedOOM looks again for the kill a
// notification announced, between looks.
var oomCountLag = []time.Duration{0, 10 * time.Millisecond, 50 * time.Millisecond, 200 * time.Millisecond, 750 * time.Millisecond}

// reportNotifiedOOM reports the kill an OOM notification announced. The v1
// controller notifies when the group runs out of memory, before the OOM
// killer has chosen and counted its victim: a count read at once may not
// have moved yet, so it is read again, for about a second at most (an OOM
// that found nothing to kill counts nothing).
func (m *Monitor) reportNotifiedOOM(b *boot) {
	for _, wait := range oomCountLag {
		time.Sleep(wait)
		if m.reportOOM(b) {
			return
		}
	}
}

// reportOOM emits an oom event if the container had OOM kills since the
// last report, and says whether it did.
func (m *Monitor) reportOOM(b *boot) bool {
	m.oomMu.Lock()
	defer m.oomMu.Unlock()
	total, err := b.group.OOMKills()
	if err != nil {
		if !errors.Is(err, cgroup.ErrNoMemoryController) {
			m.log.Warn("count OOM kills", "err", err)
		}
		return false
	}
	reported := total > m.oomSeen
	if reported {
		m.log.Warn("OOM kills in the container", "new", total-m.oomSeen, "total", total)
		m.emit(events.Event{Type: events.OOM, Count: total - m.oomSeen, Total: total})
	}
	m.oomSeen = total // a group removed inside takes its kills with it: the count may go down
	return reported
}

// oomNotifier opens the container's OOM notification for the watcher (or
// for watchOOM); nil when the host cannot tell (no memory controller).
func (m *Monitor) oomNotifier(b *boot) *cgroup.OOMNotifier {
	n, err := b.group.OOMNotifier()
	if err != nil {
		if !errors.Is(err, cgroup.ErrNoMemoryController) {
			m.log.Warn("OOM kills will not be reported", "err", err)
		}
		return nil
	}
	return n
}

// oomSeenEnviron is the environment entry that tells the watcher (and the
// monitor it hands back to) how many kills were reported.
func (m *Monitor) oomSeenEnviron() string {
	m.oomMu.Lock()
	defer m.oomMu.Unlock()
	return oomSeenEnv + "=" + strconv.FormatUint(m.oomSeen, 10)
}

// resumeOOM takes the count over from the watcher's environment and
// reports the kills while the monitor was handing over.
func (m *Monitor) resumeOOM(b *boot) {
	if n, err := strconv.ParseUint(os.Getenv(oomSeenEnv), 10, 64); err == nil {
		m.oomSeen = n
	}
	os.Unsetenv(oomSeenEnv)
	m.reportOOM(b)
}

// watchOOM reports OOM kills from a goroutine while the monitor stays in Go
// (no helper, a console client attached); stop ends it. The goroutine
// blocks in poll(2), on a thread of its own: the runtime's poller knows no
// POLLPRI, which is how cgroup2 tells.
func (m *Monitor) watchOOM(b *boot) (stop func()) {
	n := m.oomNotifier(b)
	if n == nil {
		return func() {}
	}
	stopR, stopW, err := os.Pipe()
	if err != nil {
		n.File.Close()
		m.log.Warn("OOM kills will not be reported", "err", err)
		return func() {}
	}
	m.reportOOM(b) // kills before the notifier was there
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			news, err := n.Wait(stopR)
			if err != nil {
				m.log.Warn("OOM kills will not be reported", "err", err)
			}
			if !news {
				return
			}
			if n.Unified() {
				m.reportOOM(b) // memory.events changed, the count with it
			} else {
				m.reportNotifiedOOM(b) // v1: the notification comes before the kill
			}
		}
	}()
	return func() {
		stopW.Close()
		<-done
		stopR.Close()
		n.File.Close()
	}
}
