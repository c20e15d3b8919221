package manager

import (
	"os"
	"time"

	"lodge/config"
	"lodge/internal/events"
)

// Events is the root's event log, for `lodge monitor`, the API server's
// event stream and the metrics exporter: Follow it (package events).
func (m *Manager) Events() *events.Log { return events.Open(m.store.EventsDir()) }

// emit appends a lifecycle event of container name to the root's event
// log. The log reports what was done; an operation that succeeded is not
// failed because its event could not be written (a full disk), so errors
// are dropped here.
func (m *Manager) emit(name string, e events.Event) {
	e.Container = name
	_ = m.Events().Append(e)
}

// expectStop tells container name's monitor why its init is about to
// end, when the monitor cannot see it (CRIU kills the tree after a dump):
// the monitor's stopped event gives the reason. The returned function
// withdraws it, for a dump that left the container running.
func (m *Manager) expectStop(name, reason string) (withdraw func()) {
	path := m.store.StopReasonPath(name)
	if err := os.WriteFile(path, []byte(reason+"\n"), 0o600); err != nil {
		return func() {}
	}
	return func() { os.Remove(path) }
}

// changedKeys names the configuration keys whose values differ between
// old (nil: unreadable) and cfg, for a config-changed event.
func changedKeys(old, cfg *config.Container) []string {
	var keys []string
	for _, k := range config.Keys() {
		now, err := cfg.Get(k.Name)
		if err != nil {
			continue
		}
		if old == nil {
			keys = append(keys, k.Name)
		} else if was, err := old.Get(k.Name); err != nil || was != now {
			keys = append(keys, k.Name)
		}
	}
	return keys
}

// since is the duration from t to now in an event's milliseconds.
func since(t time.Time) float64 { return events.Millis(time.Since(t)) }
