package cgroup

// Integration tests: they run as root against this machine's kernel, and
// create cgroups only below this process's own cgroup on each hierarchy, in a
// parent named lodge-test-<random> that the cleanup removes.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"lodge/internal/testreq"
)

// testUID is the host uid of the test container's root.
const testUID = 700000

func rootHost(t *testing.T) *Host {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test against the kernel's cgroups; skipped with -short")
	}
	if os.Geteuid() != 0 {
		testreq.Skip(t, "root", "needs root: creates cgroups below this process's own cgroup")
	}
	h, err := DetectHost()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func uniqueParent(t *testing.T) string {
	b := make([]byte, 4)
	rand.Read(b)
	return "lodge-test-" + hex.EncodeToString(b)
}

// testGroup returns a fresh group in its own test parent, removed (with every
// process in it killed) when the test ends.
func testGroup(t *testing.T, h *Host, name string) *Group {
	t.Helper()
	parent := uniqueParent(t)
	g := h.ownGroup(parent, name)
	t.Cleanup(func() { cleanupParent(t, h, parent) })
	return g
}

// cleanupParent kills what is left in the test parent and removes it on
// every hierarchy, then checks that nothing is left.
func cleanupParent(t *testing.T, h *Host, parent string) {
	for _, hi := range h.Hierarchies {
		dir := filepath.Join(hi.OwnDir(), parent)
		if !exists(dir) {
			continue
		}
		subs, _ := subdirs(dir)
		for _, s := range subs {
			g := h.ownGroup(parent, filepath.Base(s))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := g.Kill(ctx); err != nil {
				t.Errorf("cleanup: %v", err)
			}
			cancel()
		}
		if err := removeTree(dir); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}
}

// proc is a process the test started; done closes once it is reaped.
type proc struct {
	cmd  *exec.Cmd
	pid  int
	done chan struct{}
	err  error // from Wait, once done is closed
}

// startProc starts a process the test owns; it is reaped in the background
// and killed (by PID) at the end of the test.
func startProc(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(name, args...), done: make(chan struct{})}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.pid = p.cmd.Process.Pid
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			t.Errorf("process %d did not die (frozen?)", p.pid)
		}
	})
	return p
}

func startSleep(t *testing.T) *proc { return startProc(t, "sleep", "100") }

func readOrFail(t *testing.T, path string) string {
	t.Helper()
	s, err := readFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestGroupLifecycle(t *testing.T) {
	h := rootHost(t)
	g := testGroup(t, h, "web1")
	if g.Exists() {
		t.Fatal("exists before Create")
	}
	if err := g.Create(); err != nil {
		t.Fatal(err)
	}
	paths := g.Paths()
	if len(paths) != len(h.Hierarchies) {
		t.Fatalf("paths %v", paths)
	}
	for key, dir := range paths {
		if !exists(filepath.Join(dir, "cgroup.procs")) {
			t.Errorf("%s: %s not created", key, dir)
		}
	}
	if d, ok := g.dirFor("cpuset"); ok && d.h.Version == 1 {
		if cpus := readOrFail(t, filepath.Join(d.path, "cpuset.cpus")); cpus == "" {
			t.Error("v1 cpuset group has no CPUs")
		}
		if v := readOrFail(t, filepath.Join(d.path, "cgroup.clone_children")); v != "1" {
			t.Errorf("cgroup.clone_children = %q", v)
		}
	}

	t.Run("apply", func(t *testing.T) { testApply(t, g) })

	sleep := startSleep(t)
	if err := g.AddProcess(sleep.pid); err != nil {
		t.Fatal(err)
	}
	pids, err := g.Procs()
	if err != nil || !slices.Equal(pids, []int{sleep.pid}) {
		t.Fatalf("Procs = %v, %v; want [%d]", pids, err, sleep.pid)
	}
	checkProcCgroup(t, g, sleep.pid)
	placement, err := ProcessPlacement(sleep.pid)
	if err != nil || !reflect.DeepEqual(placement, g.Placement()) {
		t.Fatalf("ProcessPlacement = %+v, %v; want the group's %+v", placement, err, g.Placement())
	}
	for _, f := range placement.Tasks {
		if !slices.Contains(mapValues(paths), filepath.Dir(f)) {
			t.Errorf("tasks file %s is not in the group", f)
		}
	}
	if s, err := g.Stats(); err != nil || s.Pids != 1 || s.MemoryLimit != 0 {
		t.Errorf("Stats = %+v, %v", s, err)
	}

	t.Run("delegate", func(t *testing.T) { testDelegate(t, g) })
	t.Run("freeze", func(t *testing.T) { testFreeze(t, g, g.freezer(), sleep.pid) })
	if fr, ok := g.v1Freezer(); ok {
		t.Run("freeze v1", func(t *testing.T) { testFreeze(t, g, fr, sleep.pid) })
	}

	if err := g.Destroy(); !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), strconv.Itoa(sleep.pid)) {
		t.Fatalf("Destroy with a process: %v", err)
	}
	if !g.Exists() {
		t.Fatal("Destroy removed a group with processes")
	}
	if err := g.Create(); !errors.Is(err, ErrBusy) {
		t.Fatalf("Create over a running group: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sleep.done:
		var ee *exec.ExitError
		if !errors.As(sleep.err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Errorf("sleep ended with %v, want SIGKILL", sleep.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the process survived Kill")
	}
	if pids, err := g.Procs(); err != nil || len(pids) != 0 {
		t.Fatalf("after Kill: %v, %v", pids, err)
	}

	if err := g.Destroy(); err != nil {
		t.Fatal(err)
	}
	if g.Exists() {
		t.Fatal("exists after Destroy")
	}
	for _, d := range g.dirs {
		if !exists(d.parent) {
			t.Errorf("base %s removed with the group; it stays, lodge's fixed place", d.parent)
		}
	}
	if err := g.Destroy(); err != nil {
		t.Errorf("second Destroy: %v", err)
	}
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// checkProcCgroup checks that pid is in the group on every hierarchy.
func checkProcCgroup(t *testing.T, g *Group, pid int) {
	t.Helper()
	cgs, err := readProcCgroup(strconv.Itoa(pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range g.dirs {
		pc, ok := lineFor(cgs, d.h)
		if !ok {
			t.Errorf("%s: process not listed", d.h.Key())
			continue
		}
		if dir, _ := d.h.Dir(pc.Path); dir != d.path {
			t.Errorf("%s: process in %s, want %s", d.h.Key(), dir, d.path)
		}
	}
}

func testApply(t *testing.T, g *Group) {
	l := Limits{MemoryBytes: 256 << 20, SwapBytes: 128 << 20, CPUQuota: 0.5, Cpuset: "0", Pids: 50}
	if err := g.Apply(l); err != nil {
		t.Fatal(err)
	}
	v1Want := map[string]string{
		"memory.limit_in_bytes":       "268435456",
		"memory.memsw.limit_in_bytes": "402653184",
		"cpu.cfs_quota_us":            "50000",
		"cpu.cfs_period_us":           "100000",
		"cpuset.cpus":                 "0",
		"pids.max":                    "50",
	}
	v2Want := map[string]string{
		"memory.max":      "268435456",
		"memory.swap.max": "134217728",
		"cpu.max":         "50000 100000",
		"cpuset.cpus":     "0",
		"pids.max":        "50",
	}
	checkLimitFiles(t, g, v1Want, v2Want)

	// Lowering memory below the current memsw and raising it above it both work.
	for _, mem := range []int64{64 << 20, 1 << 30} {
		if err := g.Apply(Limits{MemoryBytes: mem, SwapBytes: 1 << 20}); err != nil {
			t.Fatalf("memory %d: %v", mem, err)
		}
	}

	// The zero Limits resets everything to unlimited.
	if err := g.Apply(Limits{}); err != nil {
		t.Fatal(err)
	}
	parentCpus := ""
	if d, ok := g.dirFor("cpuset"); ok && d.h.Version == 1 {
		parentCpus = readOrFail(t, filepath.Join(d.parent, "cpuset.cpus"))
	}
	checkLimitFiles(t, g, map[string]string{
		"memory.limit_in_bytes":       "9223372036854771712",
		"memory.memsw.limit_in_bytes": "9223372036854771712",
		"cpu.cfs_quota_us":            "-1",
		"cpuset.cpus":                 parentCpus,
		"pids.max":                    "max",
	}, map[string]string{
		"memory.max":      "max",
		"memory.swap.max": "max",
		"cpu.max":         "max 100000",
		"cpuset.cpus":     "",
		"pids.max":        "max",
	})
}

// checkLimitFiles reads back each file where the group has it.
func checkLimitFiles(t *testing.T, g *Group, v1, v2 map[string]string) {
	t.Helper()
	checked := 0
	for _, d := range g.dirs {
		want := v1
		if d.h.Version == 2 {
			want = v2
		}
		for file, val := range want {
			ctrl, _, _ := strings.Cut(file, ".")
			if !d.h.Has(ctrl) {
				continue
			}
			got, err := readFile(filepath.Join(d.path, file))
			if err != nil {
				t.Errorf("%s: %v", file, err)
				continue
			}
			checked++
			if got != val {
				t.Errorf("%s/%s = %q, want %q", d.path, file, got, val)
			}
		}
	}
	if checked == 0 {
		t.Error("no limit file checked")
	}
}

func testDelegate(t *testing.T, g *Group) {
	if err := g.Delegate(testUID, testUID); err != nil {
		t.Fatal(err)
	}
	for _, d := range g.dirs {
		want := []string{".", "cgroup.clone_children", "cgroup.procs", "tasks"}
		if d.h.Version == 2 {
			want = []string{".", "cgroup.procs", "cgroup.subtree_control", "cgroup.threads"}
			for _, f := range []string{"memory.oom.group", "memory.reclaim"} {
				if exists(filepath.Join(d.path, f)) {
					want = append(want, f)
				}
			}
		}
		slices.Sort(want)
		if got := ownedBy(t, d.path, testUID); !slices.Equal(got, want) {
			t.Errorf("%s: owned by %d: %v, want %v", d.path, testUID, got, want)
		}
		if got := slices.DeleteFunc(ownedBy(t, d.parent, testUID), func(n string) bool { return n == g.name }); len(got) != 0 {
			t.Errorf("%s: parent files owned by %d: %v", d.parent, testUID, got)
		}
	}
}

// ownedBy lists "." and the files of dir owned by uid:uid.
func ownedBy(t *testing.T, dir string, uid int) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"."}
	for _, e := range entries {
		names = append(names, e.Name())
	}
	var out []string
	for _, n := range names {
		fi, err := os.Stat(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if int(st.Uid) == uid && int(st.Gid) == uid {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// testFreeze freezes the group through fr, with pid running in it.
func testFreeze(t *testing.T, g *Group, fr freezer, pid int) {
	t.Logf("freezer %T", fr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := fr.freeze(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, err := fr.frozen(); err != nil || !ok {
		t.Fatalf("frozen = %v, %v", ok, err)
	}
	if fr == g.freezer() {
		if ok, err := g.Frozen(); err != nil || !ok {
			t.Fatalf("Frozen = %v, %v", ok, err)
		}
	}
	// A frozen process does not react to SIGSTOP: it stays in the freezer.
	if err := fr.thaw(); err != nil {
		t.Fatal(err)
	}
	if ok, err := fr.frozen(); err != nil || ok {
		t.Fatalf("after thaw frozen = %v, %v", ok, err)
	}
	// Through the Group methods too.
	if err := g.Freeze(ctx); err != nil {
		t.Fatal(err)
	}
	if err := g.Thaw(); err != nil {
		t.Fatal(err)
	}
	if ok, err := g.Frozen(); err != nil || ok {
		t.Fatalf("after Thaw Frozen = %v, %v", ok, err)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
		t.Fatalf("process gone after thaw: %v", err)
	}
}

// TestKillV1 kills through the v1 path (freeze, signal each, thaw), forked
// processes included, on a view of the group without its cgroup2 directory.
func TestKillV1(t *testing.T) {
	h := rootHost(t)
	g := testGroup(t, h, "killv1")
	if err := g.Create(); err != nil {
		t.Fatal(err)
	}
	// A shell that keeps forking children.
	sh := startProc(t, "sh", "-c", "while :; do sleep 100 & sleep 0.01; done")
	if err := g.AddProcess(sh.pid); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "the shell to fork children", func() bool {
		pids, err := g.Procs()
		return err == nil && len(pids) >= 3
	})
	v1 := *g
	v1.dirs = slices.DeleteFunc(slices.Clone(g.dirs), func(d groupDir) bool { return d.h.Version == 2 })
	if _, ok := v1.v1Freezer(); !ok {
		t.Log("no v1 freezer: killing without a freeze")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := v1.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed in %v", time.Since(start))
	if pids, _ := g.Procs(); len(pids) != 0 {
		t.Fatalf("left: %v", pids)
	}
	if err := g.Destroy(); err != nil {
		t.Fatal(err)
	}
}

func TestCpusetError(t *testing.T) {
	h := rootHost(t)
	g := testGroup(t, h, "cpuset")
	if err := g.Create(); err != nil {
		t.Fatal(err)
	}
	d, ok := g.dirFor("cpuset")
	if !ok {
		testreq.Skip(t, "cpuset", "no cpuset controller on this host")
	}
	avail := readOrFail(t, filepath.Join(d.parent, "cpuset.cpus"))
	bad := "7"
	if n := countCPUs(avail); n > 7 {
		bad = strconv.Itoa(n + 100)
	}
	err := g.Apply(Limits{Cpuset: bad})
	if err == nil {
		t.Fatalf("cpuset %q accepted on a host with CPUs %s", bad, avail)
	}
	if !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ERANGE) {
		t.Errorf("error %v does not wrap the kernel's EINVAL or ERANGE", err)
	}
	for _, want := range []string{"cpuset.cpus", `"` + bad + `"`, KeyCpuset, "here: " + avail} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	t.Log(err)
	if err := g.Destroy(); err != nil {
		t.Fatal(err)
	}
}

func countCPUs(list string) int {
	n := 0
	for _, part := range strings.Split(list, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, _ := strconv.Atoi(lo)
		b := a
		if isRange {
			b, _ = strconv.Atoi(hi)
		}
		n += b - a + 1
	}
	return n
}

func TestStaleGroupReused(t *testing.T) {
	h := rootHost(t)
	g := testGroup(t, h, "stale")
	if err := g.Create(); err != nil {
		t.Fatal(err)
	}
	// What a crash leaves: the guest's sub-cgroups, and a frozen group.
	for _, d := range g.dirs {
		if err := os.MkdirAll(filepath.Join(d.path, "system.slice", "x.service"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.Freeze(ctx); err != nil {
		t.Fatal(err)
	}
	again := h.ownGroup(filepath.Base(g.dirs[0].parent), g.name)
	if err := again.Create(); err != nil {
		t.Fatal(err)
	}
	for _, d := range again.dirs {
		if subs, _ := subdirs(d.path); len(subs) != 0 {
			t.Errorf("stale sub-cgroups left: %v", subs)
		}
	}
	if ok, err := again.Frozen(); err != nil || ok {
		t.Errorf("reused group frozen = %v, %v", ok, err)
	}
	sleep := startSleep(t)
	if err := again.AddProcess(sleep.pid); err != nil {
		t.Fatalf("joining the reused group: %v", err)
	}
	if err := again.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	if err := again.Destroy(); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentCreateDestroy(t *testing.T) {
	h := rootHost(t)
	parent := uniqueParent(t)
	t.Cleanup(func() { cleanupParent(t, h, parent) })
	const workers, rounds = 20, 5
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := h.ownGroup(parent, fmt.Sprintf("c%02d", i))
			for range rounds {
				if err := g.Create(); err != nil {
					errs <- err
					return
				}
				if err := g.Apply(Limits{MemoryBytes: 64 << 20, Pids: 10}); err != nil {
					errs <- err
				}
				if err := g.Destroy(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, hi := range h.Hierarchies {
		if subs, _ := subdirs(filepath.Join(hi.OwnDir(), parent)); len(subs) > 0 {
			t.Errorf("left behind in the base: %v", subs)
		}
	}
}

func TestOpen(t *testing.T) {
	h := rootHost(t)
	g := testGroup(t, h, "open")
	if err := g.Create(); err != nil {
		t.Fatal(err)
	}
	o := Open(g.Paths())
	if !o.Exists() || o.Name() != "open" || len(o.dirs) != len(g.dirs) {
		t.Fatalf("Open: %+v", o)
	}
	if err := o.Apply(Limits{Pids: 9}); err != nil {
		t.Fatal(err)
	}
	d, _ := g.dirFor("pids")
	if v := readOrFail(t, filepath.Join(d.path, "pids.max")); v != "9" {
		t.Errorf("pids.max = %q", v)
	}
	if ok, err := o.Frozen(); err != nil || ok {
		t.Errorf("Frozen = %v, %v", ok, err)
	}
	if err := o.Destroy(); err != nil || g.Exists() {
		t.Fatalf("Destroy through Open: %v", err)
	}
	// A group that is gone: Frozen says so, Kill and Destroy are no-ops.
	if _, err := o.Frozen(); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Frozen on a removed group: %v", err)
	}
	if err := o.Kill(context.Background()); err != nil {
		t.Error(err)
	}
	if err := Open(nil).Destroy(); err != nil {
		t.Error(err)
	}
}

func TestInsideMountsThisHost(t *testing.T) {
	h, err := DetectHost()
	if err != nil {
		t.Fatal(err)
	}
	if h.Mode != Hybrid {
		testreq.Skipf(t, "hybrid", "checks a hybrid host; this one is %s", h.Mode)
	}
	var targets []string
	for _, m := range h.InsideMounts() {
		targets = append(targets, m.Target+"="+m.FSType+":"+m.Data)
	}
	for _, want := range []string{"memory=cgroup:memory", "systemd=cgroup:none,name=systemd", "unified=cgroup2:"} {
		if !slices.Contains(targets, want) {
			t.Errorf("InsideMounts %v lacks %s", targets, want)
		}
	}
	if targets[len(targets)-1] != "unified=cgroup2:" {
		t.Errorf("unified is not last: %v", targets)
	}
	t.Log(targets)
}
