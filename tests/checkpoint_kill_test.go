package tests

import (
	"encoding/json"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// kill -9 of `lodge checkpoint` and of `lodge restore` at random moments
// (issue 12): afterwards the container either runs (init alive in its
// cgroup, thawed, its counter counting, exec working) or is stopped with
// nothing of it left, every checkpoint `lodge info` lists restores, and
// `lodge list` says which of the two it is.
//
// What is killed: the lodge CLI, as a user's kill -9 of the command does.
// CRIU's dump runs as the CLI's child (criu swrk), in a process group of its
// own: it is not killed with the CLI and finishes (or rolls back) its dump
// by itself, holding the container's lock until it exits; the test waits
// for it, as the next lodge command does. A restore runs in the container's
// monitor (lodge-monitor, started by the CLI in its own session), which
// outlives the CLI and finishes the restore. A user's kill -9 "of the
// restore" may as well hit the monitor: some restore rounds kill it instead,
// and two checkpoint rounds kill the CRIU processes instead of the CLI.
//
// The seed of the random moments is logged; LODGE_KILL_SEED repeats a run.

func TestKillCheckpoint(t *testing.T) {
	needCRIU(t)
	e := newEnv(t)
	rng := killRand(t)
	const name = "kc"
	e.createBusybox(name, counterEvery100ms)
	e.must("start", name)
	waitCounter(t, e, name, 5)

	// One whole checkpoint first: its length spreads the kills, and the
	// container always has a complete checkpoint to be restored from.
	began := time.Now()
	e.must("checkpoint", name)
	usual := time.Since(began)
	floor := readCounter(t, e, name) // every later checkpoint is at least here
	t.Logf("a checkpoint takes %v here", usual)

	for round := 0; round < 10; round++ {
		args := []string{"checkpoint", name}
		if round%2 == 0 {
			args = append(args, "--stop")
		}
		before := len(e.checkpoints(name))
		delay := time.Duration(rng.Int63n(int64(usual * 12 / 10)))
		k := e.killAfter(delay, args...)
		state := e.checkTruth(name, false)
		cps := e.checkCheckpoints(name)
		t.Logf("round %d: lodge %s killed after %v (%s): %s, %d checkpoints listed", round, strings.Join(args, " "), delay, k, state, len(cps))
		if state == "STOPPED" {
			// Stopped by the dump: its checkpoint must be the newest.
			if len(cps) != before+1 {
				t.Errorf("round %d: %s stopped with %d checkpoints listed, %d before: the one that stopped it is not", round, name, len(cps), before)
			}
			e.restoreAndCount(name, "", floor)
		}
	}
	// CRIU itself killed (a user's kill -9 of "criu", or of every process
	// of the checkpoint): the tree it froze must not stay frozen.
	for round := 10; round < 12; round++ {
		args := []string{"checkpoint", name}
		if round%2 == 0 {
			args = append(args, "--stop")
		}
		before := len(e.checkpoints(name))
		delay := time.Duration(rng.Int63n(int64(usual * 12 / 10)))
		k := e.killCRIUAfter(delay, args...)
		state := e.checkTruth(name, false)
		cps := e.checkCheckpoints(name)
		t.Logf("round %d: the CRIU of lodge %s killed after %v (%s): %s, %d checkpoints listed", round, strings.Join(args, " "), delay, k, state, len(cps))
		if state == "STOPPED" {
			if len(cps) < before {
				t.Errorf("round %d: a checkpoint was lost", round)
			}
			e.restoreAndCount(name, "", floor)
		}
	}
	// Every checkpoint listed restores and continues the counter.
	cps := e.checkpoints(name)
	t.Logf("%d checkpoints listed after the kills", len(cps))
	for _, cp := range cps {
		e.must("stop", "--force", name)
		e.assertNoLeftovers(name)
		e.restoreAndCount(name, cp, floor)
	}
	// A checkpoint after the kills cleans up the incomplete ones they left.
	e.must("checkpoint", name)
	if tmp, _ := filepath.Glob(filepath.Join(e.root, "containers", name, "checkpoints", "*.tmp")); len(tmp) > 0 {
		t.Errorf("incomplete checkpoints left after a complete one: %v", tmp)
	}
	e.must("stop", "--force", name)
	e.assertNoLeftovers(name)
}

func TestKillRestore(t *testing.T) {
	needCRIU(t)
	e := newEnv(t)
	rng := killRand(t)
	const name = "kr"
	e.createBusybox(name, counterEvery100ms)
	e.must("start", name)
	waitCounter(t, e, name, 5)
	floor := readCounter(t, e, name)
	e.must("checkpoint", name, "--stop")

	began := time.Now()
	e.must("restore", name)
	usual := time.Since(began)
	t.Logf("a restore takes %v here", usual)
	e.must("stop", "--force", name)
	e.assertNoLeftovers(name)

	for round := 0; round < 10; round++ {
		delay := time.Duration(rng.Int63n(int64(usual * 12 / 10)))
		monitorKill := round%3 == 2
		var k killed
		what := "lodge restore killed after"
		if monitorKill {
			k = e.killMonitorAfter(delay, "restore", name)
			what = "the monitor of lodge restore killed, after it started, in"
		} else {
			k = e.killAfter(delay, "restore", name)
		}
		// A killed monitor leaves its half-made restore to the next
		// command's stale clean-up (start, restore, stop, delete).
		state := e.checkTruth(name, monitorKill)
		t.Logf("round %d: %s %v (%s): %s", round, what, delay, k, state)
		if k.monitor && state != "RUNNING" {
			t.Errorf("round %d: the monitor went on with the restore after lodge was killed, yet %s is %s", round, name, state)
		}
		if state == "RUNNING" {
			if n := readCounter(t, e, name); n < floor {
				t.Errorf("round %d: restored counter %d, the checkpoint had at least %d", round, n, floor)
			}
			e.must("stop", "--force", name)
		}
		e.assertNoLeftovers(name)
		if len(e.checkpoints(name)) == 0 {
			t.Fatalf("round %d: the checkpoint is gone", round)
		}
	}
	e.restoreAndCount(name, "", floor)
	e.must("stop", "--force", name)
	e.assertNoLeftovers(name)
}

// killRand is the test's random source, its seed logged (LODGE_KILL_SEED
// sets it).
func killRand(t *testing.T) *rand.Rand {
	seed := time.Now().UnixNano()
	if s := os.Getenv("LODGE_KILL_SEED"); s != "" {
		seed, _ = strconv.ParseInt(s, 10, 64)
	}
	t.Logf("seed %d (LODGE_KILL_SEED=%d repeats it)", seed, seed)
	return rand.New(rand.NewSource(seed))
}

func waitCounter(t *testing.T, e *env, name string, past int) {
	t.Helper()
	waitUntil(t, "the counter of "+name+" to pass "+itoa(past), func() bool {
		r := e.run("exec", name, "--", "cat", "/counter")
		n, _ := strconv.Atoi(strings.TrimSpace(r.stdout))
		return n > past
	})
}

// killed says how a killed command ended.
type killed struct {
	finished bool // it had exited before the kill
	code     int
	stderr   string
	monitor  bool // it had started a monitor, which went on
	other    bool // a process below it was killed, not the CLI
}

func (k killed) String() string {
	if k.finished {
		return "it had finished: exit " + itoa(k.code) + " " + strings.TrimSpace(k.stderr)
	}
	if k.other {
		return "killed; lodge then exited " + itoa(k.code) + " " + strings.TrimSpace(k.stderr)
	}
	return "killed"
}

// killAfter runs lodge args, kills the CLI (only it) with SIGKILL after
// delay, and waits until what it started has settled: a CRIU it ran has
// exited, a monitor it started has finished the restore or exited.
func (e *env) killAfter(delay time.Duration, args ...string) killed {
	e.t.Helper()
	cmd, stderr := e.startLodge(args...)
	k, tree := killAt(cmd, stderr, time.Now().Add(delay))
	k.monitor = e.settle(tree) && !k.finished
	e.settleContainer(args[len(args)-1])
	return k
}

// killMonitorAfter runs lodge args (a restore) and kills the container's
// monitor it starts, delay after it appeared; the CLI is left to end.
func (e *env) killMonitorAfter(delay time.Duration, args ...string) killed {
	e.t.Helper()
	cmd, stderr := e.startLodge(args...)
	cli := cmd.Process.Pid
	mon := 0
	for mon == 0 {
		for _, p := range descendants(cli) {
			if cmdline(p)[0] == "lodge-monitor" {
				mon = p
			}
		}
		if mon == 0 && exited(cli) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if mon == 0 {
		cmd.Wait()
		return killed{finished: true, code: cmd.ProcessState.ExitCode(), stderr: stderr.String()}
	}
	deadline := time.Now().Add(delay)
	var tree []int
	for time.Now().Before(deadline) {
		tree = append(tree, descendants(mon)...)
		time.Sleep(time.Millisecond)
	}
	tree = append(tree, descendants(mon)...)
	syscall.Kill(mon, syscall.SIGKILL)
	cmd.Wait()
	e.settle(tree)
	e.settleContainer(args[len(args)-1])
	return killed{}
}

// killCRIUAfter runs lodge args (a checkpoint) and kills, delay after
// the start, the CRIU processes below it (the first may be the version
// check, then the dump's), and lets the CLI end.
func (e *env) killCRIUAfter(delay time.Duration, args ...string) killed {
	e.t.Helper()
	cmd, stderr := e.startLodge(args...)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	at := time.Now().Add(delay)
	for {
		select {
		case <-done:
			e.settleContainer(args[len(args)-1])
			return killed{finished: true, code: cmd.ProcessState.ExitCode(), stderr: stderr.String()}
		case <-time.After(time.Millisecond):
		}
		if time.Now().Before(at) {
			continue
		}
		var criu []int
		for _, p := range descendants(cmd.Process.Pid) {
			if isCRIU(p) {
				criu = append(criu, p)
			}
		}
		if len(criu) > 0 {
			for _, p := range criu {
				syscall.Kill(p, syscall.SIGKILL)
			}
			<-done
			e.settleContainer(args[len(args)-1])
			// The CLI itself was not killed: its exit says whether the
			// dump got through (a helper process of CRIU was killed) or not.
			return killed{other: true, code: cmd.ProcessState.ExitCode(), stderr: stderr.String()}
		}
	}
}

func (e *env) startLodge(args ...string) (*exec.Cmd, *strings.Builder) {
	e.t.Helper()
	cmd := exec.Command(e.bin, append([]string{"--root", e.root}, args...)...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LODGE_HOST_CONFIG=" + e.hostConfig}
	stderr := &strings.Builder{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	return cmd, stderr
}

// killAt kills cmd's process (the CLI only) at the deadline unless it
// ended first, and reaps it. It returns the processes below the CLI at the
// kill, for settle.
func killAt(cmd *exec.Cmd, stderr *strings.Builder, at time.Time) (killed, []int) {
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	var tree []int
	for time.Now().Before(at) {
		select {
		case <-done:
			return killed{finished: true, code: cmd.ProcessState.ExitCode(), stderr: stderr.String()}, tree
		case <-time.After(time.Millisecond):
		}
		tree = append(tree, descendants(cmd.Process.Pid)...)
	}
	tree = append(tree, descendants(cmd.Process.Pid)...)
	syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
	<-done
	if cmd.ProcessState.Exited() {
		return killed{finished: true, code: cmd.ProcessState.ExitCode(), stderr: stderr.String()}, tree
	}
	return killed{}, tree
}

// settle waits until the processes the killed CLI had started are done
// with the operation: a CRIU has exited (the next lodge command waits for
// it on the container's lock), a monitor has either finished its restore
// (the state file names it) or exited.
func (e *env) settle(tree []int) (sawMonitor bool) {
	e.t.Helper()
	var criu, monitors []int
	seen := map[int]bool{}
	for _, p := range tree {
		if seen[p] {
			continue
		}
		seen[p] = true
		switch args := cmdline(p); {
		case args[0] == "lodge-monitor":
			monitors = append(monitors, p)
		case isCRIU(p):
			criu = append(criu, p)
		}
	}
	e.waitGone(criu)
	for _, mon := range monitors {
		waitUntil(e.t, "the monitor to finish the restore or exit", func() bool {
			if exited(mon) {
				return true
			}
			var infos []info
			json.Unmarshal([]byte(e.must("list", "--format", "json")), &infos)
			for _, i := range infos {
				if i.MonitorPID == mon && i.State == "RUNNING" && i.Error == "" {
					return true // its state file names it
				}
			}
			return false
		})
	}
	return len(monitors) > 0
}

// settleContainer waits until container name is not on its way down: a
// dump with --stop that CRIU completed after the CLI was killed ends with
// CRIU killing the tree, and the monitor tearing the container down, a
// moment after CRIU exits. Then it is either RUNNING with an init that is
// not being killed, or STOPPED with its monitor gone (or in any other
// state, which checkTruth refuses).
func (e *env) settleContainer(name string) {
	e.t.Helper()
	waitUntil(e.t, name+" to settle", func() bool {
		for _, i := range e.list() {
			if i.Name != name {
				continue
			}
			switch i.State {
			case "RUNNING":
				return !exited(i.PID) && !killPending(i.PID)
			case "STOPPED":
				return len(e.containerProcesses(name)) == 0
			case "STOPPING", "STARTING":
				return false
			}
		}
		return true
	})
}

// waitGone waits for the CRIU processes among pids to exit.
func (e *env) waitGone(pids []int) {
	e.t.Helper()
	for _, p := range pids {
		if isCRIU(p) {
			waitUntil(e.t, "criu "+itoa(p)+" to exit", func() bool { return exited(p) })
		}
	}
}

// checkTruth compares what `lodge list` says of name with the kernel and
// returns the state: RUNNING (init alive in the container's cgroup, not
// frozen, counting, exec working) or STOPPED (nothing of it left).
func (e *env) checkTruth(name string, cleanFirst bool) string {
	e.t.Helper()
	if cleanFirst && e.info(name).State == "STOPPED" {
		if r := e.run("stop", name); !strings.Contains(r.stderr, "is not running") {
			e.t.Errorf("lodge stop of a stopped %s: %s", name, r)
		}
	}
	var i *info
	for _, x := range e.list() {
		if x.Name == name {
			i = &x
		}
	}
	if i == nil {
		e.t.Fatalf("lodge list does not show %s", name)
	}
	if i.Error != "" {
		e.t.Errorf("lodge list shows %s with an error: %s", name, i.Error)
	}
	switch i.State {
	case "RUNNING":
		if exited(i.PID) {
			e.t.Fatalf("lodge list says %s RUNNING with init %d, which is gone", name, i.PID)
		}
		cg, _ := os.ReadFile("/proc/" + itoa(i.PID) + "/cgroup")
		if !strings.Contains(string(cg), "/"+e.cgroupName+"/"+name) {
			e.t.Errorf("init %d of %s is not in its cgroup:\n%s", i.PID, name, cg)
		}
		for key, dir := range i.Cgroups {
			if key == "freezer" {
				expectFile(e.t, filepath.Join(dir, "freezer.state"), "THAWED")
			} else if _, err := os.Stat(filepath.Join(dir, "cgroup.freeze")); err == nil {
				expectFile(e.t, filepath.Join(dir, "cgroup.freeze"), "0")
			}
		}
		first := readCounter(e.t, e, name)
		waitUntil(e.t, "the counter of "+name+" to count", func() bool { return readCounter(e.t, e, name) > first })
	case "STOPPED":
		e.assertNoLeftovers(name)
	default:
		e.t.Fatalf("lodge list says %s is %s after the kill", name, i.State)
	}
	return i.State
}

type checkpointInfo struct {
	Name string `json:"name"`
	Dir  string `json:"dir"`
}

// checkpoints are the checkpoints `lodge info` lists for name.
func (e *env) checkpoints(name string) []string {
	e.t.Helper()
	var i struct {
		Checkpoints []checkpointInfo `json:"checkpoints"`
	}
	if err := json.Unmarshal([]byte(e.must("info", name, "--format", "json")), &i); err != nil {
		e.t.Fatal(err)
	}
	var dirs []string
	for _, c := range i.Checkpoints {
		dirs = append(dirs, c.Dir)
	}
	return dirs
}

// checkCheckpoints checks that every listed checkpoint is complete (its
// record and CRIU's inventory are there) and that no staging directory is
// listed.
func (e *env) checkCheckpoints(name string) []string {
	e.t.Helper()
	cps := e.checkpoints(name)
	if len(cps) == 0 {
		e.t.Errorf("%s has no checkpoint listed: the complete one is lost", name)
	}
	for _, dir := range cps {
		if strings.HasSuffix(dir, ".tmp") {
			e.t.Errorf("an incomplete checkpoint is listed: %s", dir)
		}
		for _, f := range []string{"checkpoint.json", "inventory.img", "pstree.img"} {
			if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
				e.t.Errorf("listed checkpoint %s lacks %s", dir, f)
			}
		}
	}
	return cps
}

// restoreAndCount restores the stopped container name from checkpoint dir
// ("" for its newest) and checks that its counter goes on from at least
// floor.
func (e *env) restoreAndCount(name, dir string, floor int) {
	e.t.Helper()
	args := []string{"restore", name}
	if dir != "" {
		args = append(args, "--dir", dir)
	}
	e.must(args...)
	if e.checkTruth(name, false) != "RUNNING" {
		e.t.Fatalf("lodge %s did not leave it running", strings.Join(args, " "))
	}
	if n := readCounter(e.t, e, name); n < floor {
		e.t.Errorf("after lodge %s the counter is %d, below %d: not the checkpoint's", strings.Join(args, " "), n, floor)
	}
}

// descendants lists the processes below pid.
func descendants(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob("/proc/" + itoa(pid) + "/task/*/children")
	for _, f := range tasks {
		data, _ := os.ReadFile(f)
		for _, c := range strings.Fields(string(data)) {
			if n, err := strconv.Atoi(c); err == nil {
				out = append(out, n)
				out = append(out, descendants(n)...)
			}
		}
	}
	return out
}

// isCRIU tells whether pid runs CRIU: its command line changes as it
// works (setproctitle), its executable (or the loader make deps runs it
// through, in CRIU's directory) does not.
func isCRIU(pid int) bool {
	exe, _ := os.Readlink("/proc/" + itoa(pid) + "/exe")
	return strings.Contains(exe, "criu")
}

func cmdline(pid int) []string {
	data, _ := os.ReadFile("/proc/" + itoa(pid) + "/cmdline")
	return strings.Split(string(data), "\x00")
}

// exited tells whether pid is gone or a zombie.
func exited(pid int) bool {
	return pid <= 0 || isZombie(pid) || syscall.Kill(pid, 0) != nil
}
