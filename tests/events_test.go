package tests

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// event is a line of lodge monitor --format json.
type event struct {
	Time       time.Time `json:"time"`
	Type       string    `json:"type"`
	Container  string    `json:"container"`
	Reason     string    `json:"reason"`
	ExitStatus *int      `json:"exit_status"`
	Signal     string    `json:"signal"`
	DurationMS float64   `json:"duration_ms"`
	Direction  string    `json:"direction"`
	Peer       string    `json:"peer"`
	Count      uint64    `json:"count"`
	Total      uint64    `json:"total"`
	Keys       []string  `json:"keys"`
}

// eventStream is a running lodge monitor --format json and the events it printed.
type eventStream struct {
	t      *testing.T
	events chan event
	cmd    *exec.Cmd
	mu     sync.Mutex
	stderr strings.Builder
}

// monitor starts `lodge monitor --format json --since 1h ARGS...` of env e
// (--since: the events of commands run before it follows the log are not
// missed); it is interrupted in the test's cleanup.
func (e *env) monitor(args ...string) *eventStream {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := e.command(ctx, append([]string{"monitor", "--format", "json", "--since", "1h"}, args...)...)
	s := &eventStream{t: e.t, events: make(chan event, 1000), cmd: cmd}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	cmd.Stderr = &lockedWriter{s: s}
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	done := make(chan struct{})
	go s.read(stdout, done)
	e.t.Cleanup(func() {
		cancel()
		<-done
		cmd.Wait()
	})
	return s
}

type lockedWriter struct{ s *eventStream }

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	return w.s.stderr.Write(p)
}

func (s *eventStream) read(r io.Reader, done chan struct{}) {
	defer close(done)
	defer close(s.events)
	lines := bufio.NewScanner(r)
	for lines.Scan() {
		var ev event
		if err := json.Unmarshal(lines.Bytes(), &ev); err != nil {
			s.t.Errorf("lodge monitor printed %q: %v", lines.Text(), err)
			continue
		}
		s.events <- ev
	}
}

// next returns the next event (a hang guard of two minutes, no timing assertion).
func (s *eventStream) next() event {
	s.t.Helper()
	select {
	case ev, ok := <-s.events:
		if !ok {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.t.Fatalf("lodge monitor ended: %s", s.stderr.String())
		}
		return ev
	case <-time.After(2 * time.Minute):
		s.t.Fatal("no event from lodge monitor within 2 minutes")
	}
	return event{}
}

// expect reads the next events and checks their types and containers
// ("type container" each), in order.
func (s *eventStream) expect(want ...string) []event {
	s.t.Helper()
	var got []event
	for _, w := range want {
		ev := s.next()
		got = append(got, ev)
		if ev.Type+" "+ev.Container != w {
			s.t.Fatalf("event %d: got %s %s (%+v), want %s", len(got), ev.Type, ev.Container, ev, w)
		}
	}
	return got
}

// TestMonitorShowsAnotherProcessActions: lodge monitor in one process
// shows, in order and once each, the events of what other lodge processes
// do; a stop asked by the CLI is one stopped event (the monitor's), with
// its reason.
func TestMonitorShowsAnotherProcessActions(t *testing.T) {
	e := newEnv(t)
	all := e.monitor()
	only := e.monitor("ev1", "--type", "stopped,deleted")
	e.createBusybox("ev1")
	e.must("start", "ev1")
	e.must("freeze", "ev1")
	e.must("unfreeze", "ev1")
	e.must("config", "set", "ev1", "limits.memory=64MiB")
	e.must("stop", "ev1")
	e.must("delete", "ev1")
	e.createBusybox("ev2") // the next event: nothing came between
	got := all.expect("created ev1", "started ev1", "frozen ev1", "unfrozen ev1", "config-changed ev1",
		"stopped ev1", "deleted ev1", "created ev2")
	if got[0].Reason != "busybox" {
		t.Errorf("created: reason %q, want the template", got[0].Reason)
	}
	if k := got[4].Keys; len(k) != 1 || k[0] != "limits.memory" {
		t.Errorf("config-changed: keys %v, want [limits.memory]", k)
	}
	if got[5].Reason != "requested" {
		t.Errorf("stopped: reason %q, want requested", got[5].Reason)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Time.Before(got[i-1].Time) {
			t.Errorf("event %d (%s) is dated before the one before it", i, got[i].Type)
		}
	}
	only.expect("stopped ev1", "deleted ev1")

	// A forced stop is a kill, and says so.
	e.createBusybox("ev3")
	e.must("start", "ev3")
	e.must("stop", "ev3", "--force")
	all.expect("created ev3", "started ev3")
	if ev := all.expect("stopped ev3")[0]; ev.Reason != "killed" {
		t.Errorf("stop --force: reason %q, want killed", ev.Reason)
	}
}

// TestMonitorInitEndsByItself: an init that exits, or a guest that powers
// itself off, is reported by the container's monitor with why.
func TestMonitorInitEndsByItself(t *testing.T) {
	e := newEnv(t)
	s := e.monitor("--type", "stopped")
	e.createBusybox("ev1", `init.command=/bin/sh -c "sleep 1; exit 3"`)
	e.must("start", "ev1")
	ev := s.expect("stopped ev1")[0]
	if ev.Reason != "exited" || ev.ExitStatus == nil || *ev.ExitStatus != 3 {
		t.Errorf("init that exited 3: got reason %q exit status %v", ev.Reason, ev.ExitStatus)
	}
	e.createBusybox("ev2")
	e.must("start", "ev2")
	// poweroff itself may be killed (143) by the shutdown it asked for:
	// only the event matters.
	e.run("exec", "ev2", "--", "poweroff")
	if ev := s.expect("stopped ev2")[0]; ev.Reason != "poweroff" {
		t.Errorf("poweroff inside: reason %q, want poweroff", ev.Reason)
	}
}

// TestMonitorInitExitsAtOnce: an init that ends as soon as it runs is
// reported started, then stopped: the monitor writes both, in the order
// they happened, whatever the lodge start that booted it does meanwhile.
func TestMonitorInitExitsAtOnce(t *testing.T) {
	e := newEnv(t)
	s := e.monitor("ev1", "--type", "started,stopped")
	e.createBusybox("ev1", `init.command=/bin/sh -c "exit 0"`)
	for round := 0; round < 3; round++ {
		startFast(t, e, "ev1")
		got := s.expect("started ev1", "stopped ev1") // exactly one started per start
		if got[1].Reason != "exited" {
			t.Errorf("stopped: reason %q, want exited", got[1].Reason)
		}
		// The monitor reports the stop before it removes the runtime state.
		waitUntil(t, "ev1 stopped", func() bool { return e.info("ev1").State == "STOPPED" })
	}
}

// startFast starts a container whose init ends at once until a start
// succeeds: one fails, and reports nothing, when init is gone before the
// boot is complete ("init exited right after it started").
func startFast(t *testing.T, e *env, name string) {
	t.Helper()
	for try := 0; ; try++ {
		r := e.run("start", name)
		if r.code == 0 {
			return
		}
		if try == 20 || !strings.Contains(r.stderr, "exited right after it started") {
			t.Fatalf("start %s: %s", name, r)
		}
	}
}

// TestMonitorOOM: a process of a container that allocates past
// limits.memory is killed by the kernel, and the container's (idle)
// monitor reports it.
func TestMonitorOOM(t *testing.T) {
	e := newEnv(t)
	s := e.monitor("--type", "oom")
	e.createBusybox("ev1", "limits.memory=16MiB")
	e.must("start", "ev1")
	// busybox dd allocates its block, then fills it from /dev/zero.
	if r := e.run("exec", "ev1", "--", "dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"); r.code != 137 {
		t.Fatalf("dd of 64 MiB in 16 MiB: want it killed (exit 137), got %s", r)
	}
	ev := s.expect("oom ev1")[0]
	if ev.Count < 1 || ev.Total < ev.Count {
		t.Errorf("oom event: count %d total %d", ev.Count, ev.Total)
	}
	if got := e.info("ev1").State; got != "RUNNING" {
		t.Errorf("after the OOM kill of dd the container is %s, want RUNNING", got)
	}
	// Again: the monitor went idle again after its report.
	e.run("exec", "ev1", "--", "dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1")
	// One allocation may cost more than one kill (the kernel can pick a
	// second victim before the first has freed its memory): the second
	// event counts the kills since the first, whatever their number.
	if ev2 := s.expect("oom ev1")[0]; ev2.Total <= ev.Total || ev2.Count != ev2.Total-ev.Total {
		t.Errorf("second oom event: count %d total %d after a first one with total %d, want total above it and count the difference",
			ev2.Count, ev2.Total, ev.Total)
	}

	// A monitor that stays in Go (a lodge without its helper) reports too;
	// its init runs the allocation (exec needs the helper).
	goEnv := newEnv(t)
	goEnv.bin = lodgeWithoutHelper(t)
	gs := goEnv.monitor("--type", "oom")
	goEnv.createBusybox("ev2", "limits.memory=16MiB",
		`init.command=/bin/sh -c "dd if=/dev/zero of=/dev/null bs=64M count=1; exec sleep 600"`)
	goEnv.must("start", "ev2")
	if ev := gs.expect("oom ev2")[0]; ev.Count != 1 {
		t.Errorf("oom event of the Go monitor: count %d, want 1", ev.Count)
	}
}

// TestMonitorOOMKeepsConsole: an OOM kill in a running container is
// reported without disturbing its console: an attached lodge console
// stays connected and the console's history (replayed to a new client)
// keeps what came before the kill.
func TestMonitorOOMKeepsConsole(t *testing.T) {
	e := newEnv(t)
	s := e.monitor("oc1", "--type", "oom")
	e.createBusybox("oc1", "limits.memory=16MiB")
	e.must("start", "oc1")
	waitUntil(t, "getty on the console", func() bool {
		return strings.Contains(e.must("exec", "oc1", "--", "ps"), "getty")
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	keys, screen := e.attachConsole(ctx, "oc1")
	readUntil(t, screen, "oc1 login:")

	if r := e.run("exec", "oc1", "--", "dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"); r.code != 137 {
		t.Fatalf("dd of 64 MiB in 16 MiB: want it killed (exit 137), got %s", r)
	}
	if ev := s.expect("oom oc1")[0]; ev.Count != 1 {
		t.Errorf("oom event: count %d, want 1", ev.Count)
	}
	// The client attached before the kill still talks to getty.
	io.WriteString(keys, "root\n")
	readUntil(t, screen, "Password:")
	// A new client gets the history, from before the kill on.
	secondKeys, secondScreen := e.attachConsole(ctx, "oc1")
	replay := readUntil(t, secondScreen, "Password:")
	io.WriteString(secondKeys, "\x01q")
	if !strings.Contains(replay, "oc1 login:") {
		t.Errorf("the console's history lost what came before the OOM kill; a new client saw:\n%s", replay)
	}
	io.WriteString(keys, "\x01q")
}

// attachConsole runs `lodge console NAME` with pipes: what is written to
// keys is typed on the console, screen shows it. It ends with ctx, or on
// Ctrl-a q; the test's cleanup waits for it.
func (e *env) attachConsole(ctx context.Context, name string) (keys io.WriteCloser, screen io.Reader) {
	e.t.Helper()
	cmd := e.command(ctx, "console", name)
	keys, _ = cmd.StdinPipe()
	screen, _ = cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { keys.Close(); cmd.Wait() })
	return keys, screen
}

// TestMonitorRemote: lodge monitor h2: follows h2's events through its
// lodge serve, and the stream ends on h2 when the client goes away.
func TestMonitorRemote(t *testing.T) {
	hs := newTwoHosts(t)
	hs.serveEachOther()
	h1, h2 := hs.h1, hs.h2
	all := h1.monitor("h2:")
	one := h1.monitor("h2:ev2", "--type", "started")
	h2.createBusybox("ev1")
	h2.must("start", "ev1")
	h2.createBusybox("ev2")
	h2.must("start", "ev2")
	all.expect("created ev1", "started ev1", "created ev2", "started ev2")
	one.expect("started ev2")
	one.cmd.Process.Kill()
	for i := 0; i < 200 && strings.Count(h2.serveLogs(), "event stream ended") < 1; i++ {
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(h2.serveLogs(), "event stream ended") {
		t.Errorf("h2's lodge serve did not end the stream of a client that went away:\n%s", h2.serveLogs())
	}
	h1.expectFail(2, "follows one host at a time", "monitor", "h2:ev1", "ev1")
}

// TestMonitorCheckpointRestore: checkpoints and restores are events with
// their durations; a checkpoint --stop is followed by the monitor's
// stopped event, reason checkpoint.
func TestMonitorCheckpointRestore(t *testing.T) {
	needCRIU(t)
	e := newEnv(t)
	s := e.monitor("ev1")
	e.createBusybox("ev1")
	e.must("start", "ev1")
	e.must("checkpoint", "ev1")
	e.must("checkpoint", "ev1", "--stop")
	e.must("restore", "ev1")
	got := s.expect("created ev1", "started ev1", "checkpointed ev1", "checkpointed ev1", "stopped ev1", "restored ev1")
	for _, i := range []int{2, 3, 5} {
		if got[i].DurationMS <= 0 {
			t.Errorf("%s event without its duration: %+v", got[i].Type, got[i])
		}
	}
	if got[4].Reason != "checkpoint" {
		t.Errorf("stopped by checkpoint --stop: reason %q, want checkpoint", got[4].Reason)
	}
}

// TestMonitorMigration: a migration is an event on both hosts, with its
// direction, peer and duration; on the source the container's stop says
// it was migrated.
func TestMonitorMigration(t *testing.T) {
	needCRIU(t)
	hs := newTwoHosts(t)
	hs.serveEachOther()
	h1, h2 := hs.h1, hs.h2
	source, target := h1.monitor(), h2.monitor()
	h1.createBusybox("mig")
	h1.must("start", "mig")
	h1.must("migrate", "mig", "h2")
	got := source.expect("created mig", "started mig", "stopped mig", "migrated mig", "deleted mig")
	if got[2].Reason != "migrated" {
		t.Errorf("stopped on the source: reason %q, want migrated", got[2].Reason)
	}
	if out := got[3]; out.Direction != "out" || out.Peer != "h2" || out.DurationMS <= 0 {
		t.Errorf("migrated on the source: want direction out, peer h2 and a duration, got %+v", out)
	}
	if in := target.expect("migrated mig")[0]; in.Direction != "in" || in.DurationMS <= 0 {
		t.Errorf("migrated on the target: want direction in and a duration, got %+v", in)
	}
}
