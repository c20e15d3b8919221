package monitor

import (
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"lodge/internal/events"
)

// The monitor reports to the root's event log what only it sees: how init
// ended (by itself, or on a stop it was asked for) and the guest's own
// reboots. A stop asked of the monitor is reported here only, never by the
// lodge that asked, so that it is one event; `lodge stop` writes its own
// only when there is no monitor to ask (manager/stop.go).

// emit appends e to the root's event log. An event that cannot be written
// (a full disk) is logged, and the container's life goes on.
func (m *Monitor) emit(e events.Event) {
	e.Container = m.name
	if err := events.Open(m.store.EventsDir()).Append(e); err != nil {
		m.log.Warn("event log", "err", err)
	}
}

// stoppedEvent says why init ended: the guest's reboot, what a lodge
// command said it was about to do (a checkpoint's or a migration's dump,
// in StopReasonPath), a stop asked of this monitor (killed when it had to
// kill), or init's own exit status or signal.
func (m *Monitor) stoppedEvent(b *boot, reboot bool) events.Event {
	e := events.Event{Type: events.Stopped}
	hint, _ := os.ReadFile(m.store.StopReasonPath(m.name))
	os.Remove(m.store.StopReasonPath(m.name))
	m.mu.Lock()
	stopping, killed := m.stopping, m.killed
	m.mu.Unlock()
	switch {
	case reboot:
		e.Reason = events.ReasonReboot
	case len(hint) > 0:
		e.Reason = strings.TrimSpace(string(hint))
	case stopping && killed:
		e.Reason = events.ReasonKilled
	case stopping:
		e.Reason = events.ReasonRequested
	case b.poweroffRequested():
		e.Reason = events.ReasonPoweroff
	case b.waitLost:
		e.Reason = events.ReasonExited // by itself, but with what status is lost
	case b.wait.Exited():
		e.Reason, e.ExitStatus = events.ReasonExited, events.Status(b.wait.ExitStatus())
	case b.wait.Signaled():
		e.Reason, e.Signal = events.ReasonSignaled, unix.SignalName(b.wait.Signal())
	}
	return e
}
