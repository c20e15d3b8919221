package tests

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"lodge/config"
	"lodge/internal/cgroup"
)

// A container's cgroups do not depend on where `lodge start` ran: started
// from a shell in a scratch cgroup (as from an SSH session's scope), it lands
// at the same base as one started from the test itself, its monitor lives in
// the base too, and killing everything in the scratch cgroup and removing it
// leaves the container running and manageable.
func TestPlacementIndependentOfCaller(t *testing.T) {
	e := newEnv(t)
	e.createBusybox("here")
	e.createBusybox("there")
	e.must("start", "here")
	here := e.info("here")

	scratch := newScratchCgroup(t)
	shell := scratch.shell(e, "start", "there")
	there := e.info("there")
	if there.State != "RUNNING" {
		t.Fatalf("started from the scratch cgroup: %+v", there)
	}
	for key, dir := range here.Cgroups {
		if want := filepath.Join(filepath.Dir(dir), "there"); there.Cgroups[key] != want {
			t.Errorf("cgroup on %s: %s; started from the test: %s", key, there.Cgroups[key], dir)
		}
	}
	if len(there.Cgroups) != len(here.Cgroups) {
		t.Errorf("cgroups %v; started from the test: %v", there.Cgroups, here.Cgroups)
	}
	for _, c := range []info{here, there} {
		expectMonitorInBase(t, c)
	}

	scratch.killAll(t, shell)
	scratch.remove(t)

	if i := e.info("there"); i.State != "RUNNING" || i.Monitor != "running" {
		t.Fatalf("after the scratch cgroup was killed and removed: %+v", i)
	}
	e.must("exec", "there", "--", "true")
	e.must("stop", "there")
	e.must("stop", "--force", "here")
	e.assertNoLeftovers("")
}

// expectMonitorInBase checks that container c's monitor is in
// BASE/.monitor/NAME on every hierarchy, beside the container's BASE/NAME.
func expectMonitorInBase(t *testing.T, c info) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(c.MonitorPID), "cgroup"))
	if err != nil {
		t.Fatalf("monitor of %s: %v", c.Name, err)
	}
	lines, err := cgroup.ParseProcCgroup(strings.NewReader(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	host, err := cgroup.DetectHost()
	if err != nil {
		t.Fatal(err)
	}
	for _, hi := range host.Hierarchies {
		for _, pc := range lines {
			if pc.Key() != hi.Key() {
				continue
			}
			dir, _ := hi.Dir(pc.Path)
			want := filepath.Join(filepath.Dir(c.Cgroups[hi.Key()]), cgroup.MonitorDir, c.Name)
			if dir != want {
				t.Errorf("monitor of %s on %s is in %s; want %s", c.Name, hi.Key(), dir, want)
			}
		}
	}
}

// scratchCgroup is a cgroup below the test's own on every hierarchy, like the
// scope of a login session.
type scratchCgroup struct {
	dirs    []string // host directories, one per hierarchy
	unified string   // the cgroup2 one, if any
}

func newScratchCgroup(t *testing.T) *scratchCgroup {
	t.Helper()
	host, err := cgroup.DetectHost()
	if err != nil {
		t.Fatal(err)
	}
	s := &scratchCgroup{}
	name := "scratch-" + randomHex(4)
	for _, hi := range host.Hierarchies {
		dir := filepath.Join(hi.OwnDir(), name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		s.dirs = append(s.dirs, dir)
		if hi.Version == 2 {
			s.unified = dir
		}
		if hi.Has("cpuset") {
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				v, _ := os.ReadFile(filepath.Join(hi.OwnDir(), f))
				if err := os.WriteFile(filepath.Join(dir, f), v, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	t.Cleanup(func() { s.remove(t) })
	return s
}

// shell starts a shell, moves it into the scratch cgroup on every hierarchy,
// has it run lodge with args, and returns it once lodge has succeeded; the
// shell then waits, as a login shell would.
func (s *scratchCgroup) shell(e *env, args ...string) *exec.Cmd {
	e.t.Helper()
	script := `read go; "$LODGE" --root "$ROOT" "$@" && echo DONE; exec sleep 600`
	cmd := exec.Command("sh", append([]string{"-c", script, "sh"}, args...)...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LODGE_HOST_CONFIG=" + e.hostConfig, "LODGE=" + e.bin, "ROOT=" + e.root}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for _, dir := range s.dirs {
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
			e.t.Fatalf("move the shell into %s: %v", dir, err)
		}
	}
	fmt.Fprintln(stdin, "go")
	done := make(chan bool, 1)
	go func() {
		lines := bufio.NewScanner(stdout)
		done <- lines.Scan() && lines.Text() == "DONE"
	}()
	select {
	case ok := <-done:
		if !ok {
			e.t.Fatalf("lodge %v from the scratch cgroup failed (see the test log)", args)
		}
	case <-time.After(2 * time.Minute): // a hang guard, not a timing assertion
		e.t.Fatalf("lodge %v from the scratch cgroup hangs", args)
	}
	return cmd
}

// killAll kills every process of the scratch cgroup, as ending a session's
// scope does, after checking that they are all the shell's: the test
// started them all.
func (s *scratchCgroup) killAll(t *testing.T, shell *exec.Cmd) {
	t.Helper()
	for _, pid := range s.procs() {
		if pid != shell.Process.Pid && parentOf(pid) != shell.Process.Pid {
			t.Fatalf("process %d in the scratch cgroup is not the test's shell (%d) or its child", pid, shell.Process.Pid)
		}
	}
	if s.unified != "" {
		if err := os.WriteFile(filepath.Join(s.unified, "cgroup.kill"), []byte("1"), 0o644); err != nil {
			t.Fatal(err)
		}
	} else {
		for _, pid := range s.procs() {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	shell.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for len(s.procs()) > 0 && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	if left := s.procs(); len(left) > 0 {
		t.Fatalf("processes %v survived the kill of the scratch cgroup", left)
	}
}

// procs lists the live processes in the scratch cgroup on any hierarchy.
func (s *scratchCgroup) procs() []int {
	seen := map[int]bool{}
	var out []int
	for _, dir := range s.dirs {
		data, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		for _, f := range strings.Fields(string(data)) {
			if pid, err := strconv.Atoi(f); err == nil && !seen[pid] && !isZombie(pid) {
				seen[pid] = true
				out = append(out, pid)
			}
		}
	}
	return out
}

func (s *scratchCgroup) remove(t *testing.T) {
	for _, dir := range s.dirs {
		if err := os.Remove(dir); err != nil && !os.IsNotExist(err) {
			t.Errorf("remove the scratch cgroup: %v", err)
		}
	}
}

// parentOf returns the parent pid of a process, or 0.
func parentOf(pid int) int {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0
	}
	text := string(data)
	fields := strings.Fields(text[strings.LastIndexByte(text, ')')+1:])
	if len(fields) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(fields[1])
	return ppid
}

// A host config whose cgroup base cannot work is refused with what, where
// and what to do, and nothing is left behind.
func TestCgroupBaseRefused(t *testing.T) {
	e := newEnv(t)
	e.createBusybox("c")
	good, err := os.ReadFile(e.hostConfig)
	if err != nil {
		t.Fatal(err)
	}
	write := func(text string) {
		if err := os.WriteFile(e.hostConfig, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { write(string(good)) }) // for the env's cleanup

	write(strings.Replace(string(good), "[cgroup]\n", "[cgroup]\nname = \"lodge\"\n", 1))
	e.expectFail(2, `cgroup.name: was replaced by cgroup.parent, an absolute cgroup path that is the same whichever cgroup lodge runs from; write parent = "/lodge"`, "start", "c")

	write(string(good) + "memroy = \"/x\"\n")
	e.expectFail(2, e.hostConfig+`:`, "start", "c")
	e.expectFail(2, `cgroup.parents."memroy": "memroy" names no cgroup hierarchy of this host (did you mean "memory"?)`, "start", "c")

	// A base lodge cannot create: below a cgroup2 cgroup whose
	// cgroup.max.depth forbids children (the env's own base, so that nothing
	// lands outside the test's cgroup).
	host, err := cgroup.DetectHost()
	if err != nil {
		t.Fatal(err)
	}
	unified, ok := host.Unified()
	if !ok {
		t.Skip("SKIPPED the uncreatable base: no cgroup2 hierarchy for cgroup.max.depth")
	}
	blocker := filepath.Join(unified.OwnDir(), e.cgroupName)
	if err := os.Mkdir(blocker, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(blocker, "cgroup.max.depth"), []byte("0"), 0o644); err != nil {
		t.Fatal(err)
	}
	parents, err := cgroup.OwnParents(filepath.Join(e.cgroupName, "blocked"))
	if err != nil {
		t.Fatal(err)
	}
	write(strings.Split(string(good), "[cgroup]")[0] + config.CgroupTOML("/"+e.cgroupName+"/blocked", parents))
	r := e.expectFail(1, `cgroup base `+parents[cgroup.UnifiedKey]+` on the unified hierarchy`, "start", "c")
	for _, want := range []string{"resource temporarily unavailable", `set cgroup.parent (or cgroup.parents."unified" for this hierarchy) in the host config to a cgroup lodge may create`} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("refusal %q does not say %q", r.stderr, want)
		}
	}
	if err := os.WriteFile(filepath.Join(blocker, "cgroup.max.depth"), []byte("max"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The levels made on the other hierarchies before the refusal stay, as
	// a base does; they are the test's to remove.
	for _, dir := range cgroupDirs(e.cgroupName, "blocked") {
		os.Remove(dir)
	}
	write(string(good))
	if i := e.info("c"); i.State != "STOPPED" {
		t.Errorf("after the refusals: %+v", i)
	}
	e.must("start", "c")
	e.must("stop", "--force", "c")
	e.assertNoLeftovers("")
}

// Two lodge roots may share a cgroup base: a same-named container of the
// other root is neither taken for one's own nor disturbed by a start.
func TestRootsSharingBase(t *testing.T) {
	a, b := newEnv(t), newEnv(t)
	b.cgroupName = a.cgroupName // b's cleanup then checks the shared base too
	b.setImages(sharedImages)
	a.createBusybox("web")
	b.createBusybox("web")
	a.must("start", "web")
	if i := b.info("web"); i.State != "STOPPED" {
		t.Errorf("the other root's container is taken for this one's: %+v", i)
	}
	b.expectFail(1, "a same-named container of another lodge root with the same cgroup.parent", "start", "web")
	if i := a.info("web"); i.State != "RUNNING" || i.Monitor != "running" {
		t.Errorf("after the other root's refused start: %+v", i)
	}
	a.must("exec", "web", "--", "true")
	a.must("stop", "--force", "web")
	a.assertNoLeftovers("web")
}
