// Package events is a lodge root's event log: one line of JSON per
// lifecycle event of a container (created, started, stopped, frozen, oom,
// ...), appended by whichever process did the thing (the CLI, `lodge
// serve`, a container's monitor) and followed by readers (`lodge monitor`,
// the API server's event stream, the metrics exporter).
//
//	ROOT/events/events.jsonl     the current log (appended with O_APPEND)
//	ROOT/events/events.jsonl.1   the log before the last rotation
//
// The log is bounded: a writer that would grow the current file past the
// limit renames it to events.jsonl.1 (replacing the older one) and starts a
// new one. Writers hold a shared flock on the directory while they append
// and the rotating writer an exclusive one, so once a follower sees the
// rename, every line of the old file is in it: a follower drains the old
// file, then reads the new one from its start, and so sees every event once,
// in order (see follow.go).
package events

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Type is what happened.
type Type string

// The event types. Each event names its container.
const (
	Created       Type = "created"        // create (Reason: the template or image)
	Copied        Type = "copied"         // a copy made (Peer: the source, host:name for a remote one)
	Started       Type = "started"        // init runs (Reason "reboot" when the guest rebooted itself)
	Stopped       Type = "stopped"        // init is gone; Reason says why (see the Reason* constants)
	Frozen        Type = "frozen"         // lodge freeze
	Unfrozen      Type = "unfrozen"       // lodge unfreeze
	Checkpointed  Type = "checkpointed"   // a CRIU dump (DurationMS: the dump)
	Restored      Type = "restored"       // restored from a checkpoint (DurationMS)
	Migrated      Type = "migrated"       // Direction out (on the source) or in (on the target), Peer, DurationMS
	Deleted       Type = "deleted"        // the container is gone
	OOM           Type = "oom"            // the kernel's OOM killer killed a process in it (Count: kills since the last event)
	ConfigChanged Type = "config-changed" // config set or edit (Keys: the keys that changed)
)

// Types lists every event type, for validating a user's filter.
var Types = []Type{Created, Copied, Started, Stopped, Frozen, Unfrozen, Checkpointed, Restored,
	Migrated, Deleted, OOM, ConfigChanged}

// Why a container stopped (Event.Reason of a Stopped event).
const (
	ReasonRequested  = "requested"  // lodge stop (or restart, delete --force): init shut down on its stop signal
	ReasonKilled     = "killed"     // lodge stop: init did not stop in time, or --force: the container was killed
	ReasonExited     = "exited"     // init exited by itself (poweroff inside, or it crashed): ExitStatus
	ReasonSignaled   = "signaled"   // init was killed by a signal nobody at lodge sent (Signal): OOM, kill from the host
	ReasonPoweroff   = "poweroff"   // the guest powered itself off or halted (reboot(2) in its pid namespace)
	ReasonReboot     = "reboot"     // the guest rebooted itself; a Started event with the same reason follows
	ReasonCheckpoint = "checkpoint" // lodge checkpoint --stop (a stateful stop)
	ReasonMigrated   = "migrated"   // it was migrated to another host
)

// Directions of a Migrated event.
const (
	DirectionOut = "out"
	DirectionIn  = "in"
)

// Event is one line of the log.
type Event struct {
	Time      time.Time `json:"time"`
	Type      Type      `json:"type"`
	Container string    `json:"container"`
	// Reason says why (Stopped, Started) or from what (Created: the template
	// or image).
	Reason string `json:"reason,omitempty"`
	// ExitStatus is init's exit status (Stopped, Reason exited).
	ExitStatus *int `json:"exit_status,omitempty"`
	// Signal names the signal that ended init (Stopped, Reason signaled).
	Signal string `json:"signal,omitempty"`
	// DurationMS is how long the operation took, in milliseconds
	// (Checkpointed, Restored, Migrated).
	DurationMS float64 `json:"duration_ms,omitempty"`
	// Peer is the other end: the host of a migration (a remote's name or
	// the peer's address as the target saw it), a copy's source.
	Peer      string `json:"peer,omitempty"`
	Direction string `json:"direction,omitempty"` // Migrated: DirectionOut or DirectionIn
	// DowntimeMS is a live migration's downtime (Migrated, out).
	DowntimeMS float64 `json:"downtime_ms,omitempty"`
	// Count is the number of OOM kills the event reports (OOM).
	Count uint64 `json:"count,omitempty"`
	// Total is the container's OOM kills since it started (OOM).
	Total uint64   `json:"total,omitempty"`
	Keys  []string `json:"keys,omitempty"` // ConfigChanged: the keys that changed
}

// Millis turns a duration into an Event's milliseconds.
func Millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Status is a helper for Stopped events with an exit status.
func Status(n int) *int { return &n }

// String is the event as `lodge monitor` prints it: time, type, container,
// then the fields that are set, as key=value.
func (e Event) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %-14s %s", e.Time.Local().Format("2006-01-02 15:04:05.000"), e.Type, e.Container)
	for _, f := range e.fields() {
		fmt.Fprintf(&b, " %s=%s", f[0], f[1])
	}
	return b.String()
}

// fields lists the optional fields that are set, in JSON's order.
func (e Event) fields() [][2]string {
	var out [][2]string
	add := func(k, v string) { out = append(out, [2]string{k, v}) }
	if e.Reason != "" {
		add("reason", e.Reason)
	}
	if e.ExitStatus != nil {
		add("exit_status", fmt.Sprint(*e.ExitStatus))
	}
	if e.Signal != "" {
		add("signal", e.Signal)
	}
	if e.DurationMS != 0 {
		add("duration_ms", fmt.Sprint(e.DurationMS))
	}
	if e.Direction != "" {
		add("direction", e.Direction)
	}
	if e.Peer != "" {
		add("peer", e.Peer)
	}
	if e.DowntimeMS != 0 {
		add("downtime_ms", fmt.Sprint(e.DowntimeMS))
	}
	if e.Count != 0 {
		add("count", fmt.Sprint(e.Count))
	}
	if e.Total != 0 {
		add("total", fmt.Sprint(e.Total))
	}
	if len(e.Keys) > 0 {
		add("keys", strings.Join(e.Keys, ","))
	}
	return out
}

// Filter selects events by type and container; empty lists select all.
type Filter struct {
	Types      []Type
	Containers []string
}

// Match reports whether e passes the filter.
func (f Filter) Match(e Event) bool {
	return (len(f.Types) == 0 || slices.Contains(f.Types, e.Type)) &&
		(len(f.Containers) == 0 || slices.Contains(f.Containers, e.Container))
}

// ParseTypes parses a comma-separated list of event types (`--type`),
// refusing unknown ones with the list of known ones.
func ParseTypes(list []string) ([]Type, error) {
	var out []Type
	for _, item := range list {
		for _, s := range strings.Split(item, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			if !slices.Contains(Types, Type(s)) {
				return nil, fmt.Errorf("unknown event type %q; known types: %s", s, strings.Join(TypeNames(), ", "))
			}
			out = append(out, Type(s))
		}
	}
	return out, nil
}

// TypeNames lists the event types' names, sorted, for help texts and
// error messages.
func TypeNames() []string {
	names := make([]string, len(Types))
	for i, t := range Types {
		names[i] = string(t)
	}
	slices.Sort(names)
	return names
}

// Decode parses one line of the log.
func Decode(line []byte) (Event, error) {
	var e Event
	if err := json.Unmarshal(line, &e); err != nil {
		return Event{}, fmt.Errorf("event log line: %w", err)
	}
	return e, nil
}
