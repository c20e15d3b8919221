package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// lodge autostart and lodge shutdown-all: boot.after order, readiness,
// parallel starts and stops, one budget, and checkpoints at shutdown that
// autostart restores. Order is checked by the times the commands report,
// never by how long anything took.

type bootResult struct {
	Name           string     `json:"name"`
	Outcome        string     `json:"outcome"`
	Autostart      bool       `json:"autostart"`
	NeededBy       []string   `json:"needed_by"`
	AlreadyRunning bool       `json:"already_running"`
	Restored       bool       `json:"restored"`
	RestoreError   string     `json:"restore_error"`
	StartedAt      *time.Time `json:"started_at"`
	ReadyAt        *time.Time `json:"ready_at"`
	Reason         string     `json:"reason"`
}

type shutdownResult struct {
	Name            string    `json:"name"`
	Outcome         string    `json:"outcome"`
	Checkpoint      string    `json:"checkpoint"`
	CheckpointError string    `json:"checkpoint_error"`
	StoppingAt      time.Time `json:"stopping_at"`
	StoppedAt       time.Time `json:"stopped_at"`
	Reason          string    `json:"reason"`
}

// autostart runs lodge autostart --format json and returns its results by
// name, and its exit status.
func (e *env) autostart(args ...string) (map[string]bootResult, result) {
	e.t.Helper()
	r := e.run(append([]string{"autostart", "--format", "json"}, args...)...)
	var list []bootResult
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		e.t.Fatalf("lodge autostart: %v\n%s", err, r)
	}
	e.t.Logf("lodge autostart, exit %d; progress:\n%s", r.code, r.stderr)
	out := map[string]bootResult{}
	for _, b := range list {
		out[b.Name] = b
	}
	return out, r
}

func (e *env) shutdownAll(args ...string) map[string]shutdownResult {
	e.t.Helper()
	r := e.run(append([]string{"shutdown-all", "--format", "json"}, args...)...)
	var list []shutdownResult
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || r.code != 0 {
		e.t.Fatalf("lodge shutdown-all: %v\n%s", err, r)
	}
	e.t.Logf("lodge shutdown-all; progress:\n%s", r.stderr)
	out := map[string]shutdownResult{}
	for _, s := range list {
		out[s.Name] = s
	}
	return out
}

// TestAutostartOrder: ten containers with a chain (db <- app <- web1..3),
// a fan-out, one not autostart that others need (cache), one whose init
// does not exist (bad) and one that needs it (badchild). Each starts only
// once those it names are ready (app's readiness is its ready command);
// the fan-out starts in parallel; bad's failure skips badchild alone.
func TestAutostartOrder(t *testing.T) {
	e := newEnv(t)
	auto := "boot.autostart=true"
	e.createBusybox("db", auto)
	e.createBusybox("cache") // not autostart: started because app needs it
	// app is ready once /ready exists, a second after its init began.
	e.createBusybox("app", auto, "boot.after=db cache",
		"init.command=/bin/sh -c 'sleep 1; touch /ready; exec /sbin/init'", "boot.ready_command=test -e /ready")
	for _, web := range []string{"web1", "web2", "web3"} {
		e.createBusybox(web, auto, "boot.after=app")
	}
	e.createBusybox("worker", auto, "boot.after=db")
	e.createBusybox("lone", auto)
	e.createBusybox("bad", auto, "init.command=/nonexistent/init")
	e.createBusybox("badchild", auto, "boot.after=bad")
	e.createBusybox("manual") // neither autostart nor needed: stays stopped

	res, r := e.autostart("--parallel", "4")
	if r.code != 1 || !strings.Contains(r.stderr, "1 failed (bad), 1 skipped (badchild)") {
		t.Errorf("autostart with a failing container: %s", r)
	}
	if _, ok := res["manual"]; ok || e.info("manual").State != "STOPPED" {
		t.Errorf("manual (not autostart) was started: %+v", res["manual"])
	}
	if b := res["bad"]; b.Outcome != "failed" || !strings.Contains(b.Reason, "/nonexistent/init") {
		t.Errorf("bad: %+v", b)
	}
	if b := res["badchild"]; b.Outcome != "skipped" || b.Reason != "it starts after bad, which failed" || e.info("badchild").State != "STOPPED" {
		t.Errorf("badchild: %+v", b)
	}
	if c := res["cache"]; c.Autostart || !slices.Equal(c.NeededBy, []string{"app"}) {
		t.Errorf("cache: %+v", c)
	}
	for _, name := range []string{"db", "cache", "app", "web1", "web2", "web3", "worker", "lone"} {
		b := res[name]
		if b.Outcome != "ready" || b.StartedAt == nil || b.ReadyAt == nil || e.info(name).State != "RUNNING" {
			t.Errorf("%s: %+v", name, b)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	after := map[string][]string{"app": {"db", "cache"}, "web1": {"app"}, "web2": {"app"}, "web3": {"app"}, "worker": {"db"}}
	for name, deps := range after {
		for _, dep := range deps {
			if res[name].StartedAt.Before(*res[dep].ReadyAt) {
				t.Errorf("%s began starting at %s, before %s was ready at %s", name, res[name].StartedAt, dep, res[dep].ReadyAt)
			}
		}
	}
	// The fan-out ran in parallel: some web began before another was ready.
	if !overlapping(res, "web1", "web2", "web3") {
		t.Errorf("web1..3 started one after the other: %+v %+v %+v", res["web1"], res["web2"], res["web3"])
	}
	// Unrelated containers of the first level too.
	if !overlapping(res, "db", "cache", "lone") {
		t.Errorf("db, cache and lone started one after the other")
	}
	e.must("exec", "app", "--", "test", "-e", "/ready")

	// Again: the running ones are only checked, bad fails again.
	res, _ = e.autostart()
	if !res["web1"].AlreadyRunning || res["web1"].Outcome != "ready" || res["badchild"].Outcome != "skipped" {
		t.Errorf("second autostart: web1 %+v, badchild %+v", res["web1"], res["badchild"])
	}
}

// overlapping tells whether, of the named containers, one began starting
// before another was ready.
func overlapping(res map[string]bootResult, names ...string) bool {
	for _, a := range names {
		for _, b := range names {
			if a != b && res[a].StartedAt.Before(*res[b].ReadyAt) && res[b].StartedAt.Before(*res[a].ReadyAt) {
				return true
			}
		}
	}
	return false
}

// TestBootAfterRefusals: config set refuses unknown names and cycles,
// naming the cycle; delete refuses a container others need, unless
// --force, after which autostart skips the dependent and says why.
func TestBootAfterRefusals(t *testing.T) {
	e := newEnv(t)
	e.createBusybox("a1")
	e.createBusybox("b1", "boot.after=a1", "boot.autostart=true")
	e.expectFail(2, `boot.after: "nosuch" is not a container here`, "config", "set", "a1", "boot.after=nosuch")
	e.expectFail(2, "a1 -> b1 -> a1", "config", "set", "a1", "boot.after=b1")
	e.expectFail(2, "c1 -> c1", "create", "c1", "--template", "busybox", "-c", "boot.after=c1")
	e.expectFail(4, "container a1 is named in boot.after of b1", "delete", "a1")
	e.must("delete", "--force", "a1")
	// b1's other keys can still be set while it names a container that is gone.
	e.must("config", "set", "b1", "limits.memory=64MiB")
	res, r := e.autostart()
	if r.code != 1 || res["b1"].Outcome != "skipped" || res["b1"].Reason != "boot.after names a1, which is not a container here" {
		t.Errorf("b1 after a1 was deleted: %+v\n%s", res["b1"], r)
	}
}

// TestShutdownAllOrder: 30 running containers, busybox and Debian with
// systemd, some waiting for others, stop within the budget in reverse
// boot.after order, dependents first; only the one whose init ignores its
// stop signal is killed.
func TestShutdownAllOrder(t *testing.T) {
	e := newEnv(t)
	auto := "boot.autostart=true"
	after := map[string][]string{
		"d1": {"b01"}, "b02": {"d1"}, "b03": {"d1"}, "b04": {"d1"}, "b05": {"d1"},
		"b06": {"b02"}, "b07": {"b06"}, "d2": {"b08"}, "b09": {"d2", "d3"},
	}
	var names []string
	for i := 1; i <= 26; i++ {
		names = append(names, fmt.Sprintf("b%02d", i))
	}
	for _, b := range names {
		e.createBusybox(b, auto)
	}
	for _, d := range []string{"d1", "d2", "d3"} {
		e.must("create", d, "--template", "debian", "-c", auto)
	}
	for name, deps := range after {
		e.must("config", "set", name, "boot.after="+strings.Join(deps, " "))
	}
	// deaf ignores its stop signal (busybox init has no handler for SIGURG).
	e.createBusybox("deaf", auto, "init.stop_signal=SIGURG", "init.stop_timeout=5s")
	names = append(names, "d1", "d2", "d3", "deaf")

	res, r := e.autostart()
	if r.code != 0 {
		t.Fatalf("autostart of 30: %s", r)
	}
	for _, n := range names {
		if res[n].Outcome != "ready" {
			t.Fatalf("%s did not start: %+v", n, res[n])
		}
	}
	if state := strings.TrimSpace(e.must("exec", "d1", "--", "systemctl", "is-system-running")); state != "running" && state != "degraded" {
		t.Errorf("d1 was called ready, but systemd says %q", state)
	}

	stops := e.shutdownAll("--timeout", "30")
	if len(stops) != len(names) {
		t.Errorf("shutdown-all reported %d containers, want %d", len(stops), len(names))
	}
	for _, n := range names {
		s := stops[n]
		want := "stopped"
		if n == "deaf" {
			want = "killed"
		}
		if s.Outcome != want {
			t.Errorf("%s: %+v, want %s", n, s, want)
		}
	}
	for name, deps := range after {
		for _, dep := range deps {
			if stops[dep].StoppingAt.Before(stops[name].StoppedAt) {
				t.Errorf("%s began stopping at %s, before %s (which starts after it) had stopped at %s",
					dep, stops[dep].StoppingAt, name, stops[name].StoppedAt)
			}
		}
	}
	for _, i := range e.list() {
		if i.State != "STOPPED" {
			t.Errorf("%s is %s after shutdown-all", i.Name, i.State)
		}
	}
}

// TestShutdownCheckpointRestore: boot.host_shutdown = "checkpoint" saves a
// container at shutdown and autostart restores it (it is not autostart)
// with its counter continued; a checkpoint that cannot be restored boots
// afresh and says so; one that cannot be made stops the container cleanly.
func TestShutdownCheckpointRestore(t *testing.T) {
	needCRIU(t)
	e := newEnv(t)
	cp := "boot.host_shutdown=checkpoint"
	e.createBusybox("keep", counterEvery100ms, cp)
	e.createBusybox("spoilt", counterEvery100ms, cp)
	e.createBusybox("held", cp)
	for _, n := range []string{"keep", "spoilt", "held"} {
		e.must("start", n)
	}
	// Past 30: a fresh boot, counting from 1, would be far below it when
	// autostart returns.
	waitUntil(t, "the counter to pass 30", func() bool {
		r := e.run("exec", "keep", "--", "cat", "/counter")
		return r.code == 0 && len(strings.TrimSpace(r.stdout)) > 0 && readCounter(t, e, "keep") > 30
	})
	// held: a process with a file of the host cannot be checkpointed.
	out, err := os.Create(filepath.Join(t.TempDir(), "exec-output"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := e.command(context.Background(), "exec", "held", "--", "sh", "-c", "sleep 600 </dev/null & echo $!")
	cmd.Stdout = out
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}

	stops := e.shutdownAll()
	if s := stops["keep"]; s.Outcome != "checkpointed" || s.Checkpoint == "" {
		t.Fatalf("keep: %+v", s)
	}
	if s := stops["held"]; s.Outcome != "stopped" || !strings.Contains(s.CheckpointError, "cannot be checkpointed") {
		t.Errorf("held, whose checkpoint fails: %+v", s)
	}
	before := readCounterFile(t, e, "keep")
	// spoilt's checkpoint loses its process tree: its restore fails.
	if err := os.Remove(filepath.Join(stops["spoilt"].Checkpoint, "pstree.img")); err != nil {
		t.Fatal(err)
	}

	res, r := e.autostart()
	if r.code != 0 {
		t.Fatalf("autostart: %s", r)
	}
	if b := res["keep"]; b.Outcome != "ready" || !b.Restored || b.Autostart {
		t.Errorf("keep: %+v", b)
	}
	if n := readCounter(t, e, "keep"); n < before {
		t.Errorf("keep's counter is %d after the restore, %d at the shutdown: not continued", n, before)
	}
	if b := res["spoilt"]; b.Outcome != "ready" || b.Restored || b.RestoreError == "" || !strings.Contains(r.stderr, "booting it afresh") {
		t.Errorf("spoilt, whose restore fails: %+v", b)
	}
	if _, ok := res["held"]; ok {
		t.Errorf("held, stopped plainly and not autostart, was started: %+v", res["held"])
	}
	// Restored once: the next autostart has nothing to do with them.
	e.must("stop", "keep")
	if res, _ := e.autostart(); len(res) != 0 || e.info("keep").State != "STOPPED" {
		t.Errorf("second autostart: %+v", res)
	}
}

// readCounterFile reads the counter a stopped container left in its root
// filesystem.
func readCounterFile(t *testing.T, e *env, name string) int {
	t.Helper()
	n := 0
	e.editRootfs(name, func(dir string) {
		data, err := os.ReadFile(filepath.Join(dir, "counter"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Sscan(strings.TrimSpace(string(data)), &n)
	})
	return n
}

// TestAutostartReadyTimeout: a container whose ready command never
// succeeds is failed at boot.ready_timeout, keeps running, and those that
// start after it are skipped.
func TestAutostartReadyTimeout(t *testing.T) {
	e := newEnv(t)
	e.createBusybox("slow", "boot.autostart=true", "boot.ready_command=test -e /never", "boot.ready_timeout=2s")
	e.createBusybox("next", "boot.autostart=true", "boot.after=slow")
	res, r := e.autostart()
	if s := res["slow"]; r.code != 1 || s.Outcome != "failed" || !strings.Contains(s.Reason, "slow is not ready after 2s (boot.ready_timeout); last: boot.ready_command exited 1") {
		t.Errorf("slow: %+v\n%s", s, r)
	}
	if n := res["next"]; n.Outcome != "skipped" || n.Reason != "it starts after slow, which failed" {
		t.Errorf("next: %+v", n)
	}
	if e.info("slow").State != "RUNNING" || e.info("next").State != "STOPPED" {
		t.Errorf("slow %s, next %s", e.info("slow").State, e.info("next").State)
	}
}

// TestAutostartBrokenConfig: a running container whose config.toml is
// damaged, named in another's boot.after, fails (lodge cannot tell whether
// it is ready) without bringing autostart down; the one that starts after
// it is skipped, saying why; an unrelated one starts.
func TestAutostartBrokenConfig(t *testing.T) {
	e := newEnv(t)
	e.createBusybox("damaged")
	e.createBusybox("after", "boot.autostart=true", "boot.after=damaged")
	e.createBusybox("free", "boot.autostart=true")
	e.must("start", "damaged")
	path := filepath.Join(e.root, "containers", "damaged", "config.toml")
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Put back before the env's clean-up (cleanups run last first).
	t.Cleanup(func() { os.WriteFile(path, good, 0o600) })
	if err := os.WriteFile(path, []byte("this is [not toml\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	res, r := e.autostart()
	if r.code != 1 || strings.Contains(r.stderr, "panic") {
		t.Errorf("autostart: %s", r)
	}
	if d := res["damaged"]; d.Outcome != "failed" || !strings.Contains(d.Reason, "configuration cannot be read") || !slices.Equal(d.NeededBy, []string{"after"}) {
		t.Errorf("damaged: %+v", d)
	}
	if a := res["after"]; a.Outcome != "skipped" || a.Reason != "it starts after damaged, which failed" || e.info("after").State != "STOPPED" {
		t.Errorf("after: %+v", a)
	}
	if f := res["free"]; f.Outcome != "ready" || e.info("free").State != "RUNNING" {
		t.Errorf("free: %+v", f)
	}
}

// TestBootAfterConcurrentCycle: config set a boot.after=b and config set b
// boot.after=a at the same moment: exactly one passes, the other is
// refused as a cycle, every time (the check and the save are one step for
// the whole host, not per container).
func TestBootAfterConcurrentCycle(t *testing.T) {
	e := newEnv(t)
	e.createBusybox("ca")
	e.createBusybox("cb")
	for round := 0; round < 20; round++ {
		sets := [][]string{{"config", "set", "ca", "boot.after=cb"}, {"config", "set", "cb", "boot.after=ca"}}
		results := make([]result, len(sets))
		var wg sync.WaitGroup
		for i, args := range sets {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = e.run(args...)
			}()
		}
		wg.Wait()
		ok := 0
		for _, r := range results {
			switch {
			case r.code == 0:
				ok++
			case r.code != 2 || !strings.Contains(r.stderr, "would make a cycle"):
				t.Errorf("round %d: a refusal that is not the cycle's: %s", round, r)
			}
		}
		if ok != 1 {
			t.Fatalf("round %d: %d of the two config sets passed, want exactly 1:\n%s\n%s", round, ok, results[0], results[1])
		}
		e.must("config", "set", "ca", "boot.after=")
		e.must("config", "set", "cb", "boot.after=")
	}
}

// TestAutostartUnmadeCheckpoint: shutdown-all marks a container before its
// checkpoint's dump; if it is killed before the dump is complete, the
// container goes down with the host unsaved, and autostart boots it afresh
// and says so. A marker whose checkpoint exists but is no longer pending
// (it was resumed since) is ignored.
func TestAutostartUnmadeCheckpoint(t *testing.T) {
	e := newEnv(t)
	cp := "boot.host_shutdown=checkpoint"
	e.createBusybox("cut", cp)
	e.createBusybox("stale", cp)
	mark := func(name, checkpoint string) {
		dir := filepath.Join(e.root, "containers", name)
		if err := os.WriteFile(filepath.Join(dir, "shutdown-checkpoint"), []byte(filepath.Join(dir, "checkpoints", checkpoint)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mark("cut", "20260101-000000.000") // never made
	mark("stale", "20260101-000000.000")
	if err := os.MkdirAll(filepath.Join(e.root, "containers", "stale", "checkpoints", "20260101-000000.000"), 0o700); err != nil {
		t.Fatal(err)
	}

	res, r := e.autostart()
	if r.code != 0 || !strings.Contains(r.stderr, "booting it afresh") {
		t.Errorf("autostart: %s", r)
	}
	if c := res["cut"]; c.Outcome != "ready" || c.Restored || !strings.Contains(c.RestoreError, "shutdown-all was cut short before its checkpoint") || e.info("cut").State != "RUNNING" {
		t.Errorf("cut: %+v", c)
	}
	if s, ok := res["stale"]; ok || e.info("stale").State != "STOPPED" {
		t.Errorf("stale, whose marker's checkpoint is not pending, was started: %+v", s)
	}
	// The marker went with the start: once stopped, cut stays down.
	e.must("stop", "cut")
	if res, _ := e.autostart(); len(res) != 0 {
		t.Errorf("second autostart: %+v", res)
	}
}

// TestShutdownAllNoCap: every container whose turn has come gets its stop
// signal at once, however many (more than the 16 slots shutdown-all once
// had): 18 that ignore theirs are all killed at the budget's end, none for
// lack of a turn. A checkpoint is not begun with too little of the budget
// left: that container is stopped cleanly instead, and says why.
func TestShutdownAllNoCap(t *testing.T) {
	e := newEnv(t)
	auto := "boot.autostart=true"
	var deaf []string
	for i := 1; i <= 18; i++ {
		name := fmt.Sprintf("deaf%02d", i)
		e.createBusybox(name, auto, "init.stop_signal=SIGURG", "init.stop_timeout=60s")
		deaf = append(deaf, name)
	}
	e.createBusybox("saved", auto, "boot.host_shutdown=checkpoint")
	if res, r := e.autostart(); r.code != 0 || len(res) != 19 {
		t.Fatalf("autostart: %s", r)
	}

	stops := e.shutdownAll("--timeout", "4")
	for _, n := range deaf {
		if s := stops[n]; s.Outcome != "killed" || !strings.Contains(s.Reason, "still running when the shutdown's budget ran out") {
			t.Errorf("%s: %+v", n, s)
		}
	}
	if s := stops["saved"]; s.Outcome != "stopped" || !strings.Contains(s.CheckpointError, "too little to begin a checkpoint") {
		t.Errorf("saved, with 4s of budget: %+v", s)
	}
	for _, i := range e.list() {
		if i.State != "STOPPED" {
			t.Errorf("%s is %s after shutdown-all", i.Name, i.State)
		}
	}
	// Not checkpointed, so not marked: autostart starts it as any other.
	if res, _ := e.autostart(); res["saved"].Restored || res["saved"].RestoreError != "" {
		t.Errorf("saved after autostart: %+v", res["saved"])
	}
}

// TestShutdownAllBound: shutdown-all gives up on a stop that is not done
// by the budget's end plus its grace, and reports it failed, instead of
// waiting for it: here one whose container lock another command holds (the
// test). The container it waits for, whose turn never came, is reported
// failed too; both still run.
func TestShutdownAllBound(t *testing.T) {
	e := newEnv(t)
	e.createBusybox("base", "boot.autostart=true")
	e.createBusybox("stuck", "boot.autostart=true", "boot.after=base")
	if _, r := e.autostart(); r.code != 0 {
		t.Fatalf("autostart: %s", r)
	}
	dir, err := os.Open(filepath.Join(e.root, "containers", "stuck"))
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	if err := syscall.Flock(int(dir.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}

	r := e.run("shutdown-all", "--timeout", "1", "--format", "json")
	t.Logf("lodge shutdown-all:\n%s", r)
	var list []shutdownResult
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || r.code != 1 || len(list) != 2 {
		t.Fatalf("shutdown-all with a stop that cannot be done: %v\n%s", err, r)
	}
	stops := map[string]shutdownResult{list[0].Name: list[0], list[1].Name: list[1]}
	if s := stops["stuck"]; s.Outcome != "failed" || !strings.Contains(s.Reason, "was not done when the budget and its 10s grace ran out") {
		t.Errorf("stuck: %+v", s)
	}
	if s := stops["base"]; s.Outcome != "failed" || !strings.Contains(s.Reason, "had not come when the budget and its 10s grace ran out") {
		t.Errorf("base: %+v", s)
	}
	dir.Close() // the lock goes: stop them now
	for _, n := range []string{"stuck", "base"} {
		if e.info(n).State != "RUNNING" {
			t.Errorf("%s is %s", n, e.info(n).State)
		}
		e.must("stop", n)
	}
}
