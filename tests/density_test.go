package tests

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	bounded "lodge/internal/parallel"
)

// densityCount is how many containers TestHostOfManyContainers runs: enough
// for what only shows at scale (starts racing for id ranges, a list that
// must see every one, the views server's index of many), small enough for
// two minutes on a 2-CPU machine. lodge-bench's density group goes to 500.
const densityCount = 100

// densityStarters is how many starts (and stops) run at once.
const densityStarters = 4

// TestHostOfManyContainers starts densityCount busybox containers, some at
// the same time, and checks that list shows every one RUNNING with its own
// id range and init, that the last one started works (exec, and its views
// show its own memory limit), and that all stop and leave nothing behind.
func TestHostOfManyContainers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 100 containers (a minute or two); not in -short")
	}
	e := newEnv(t)
	e.widenIDPool(densityCount + 8)
	names := make([]string, densityCount)
	for i := range names {
		names[i] = fmt.Sprintf("many%03d", i)
	}
	last := names[len(names)-1]
	for _, name := range names[:len(names)-1] {
		e.createBusybox(name)
	}
	e.createBusybox(last, "limits.memory=96MiB")
	// The last one starts alone, after all the others: its start and its
	// views are those of a host that already runs the rest.
	e.inParallel(names[:len(names)-1], "start")
	e.must("start", last)

	infos := e.list()
	if len(infos) != densityCount {
		t.Fatalf("lodge list shows %d containers, want %d", len(infos), densityCount)
	}
	ranges, pids := map[string]string{}, map[int]string{}
	for _, i := range infos {
		if i.State != "RUNNING" {
			t.Errorf("%s is %s in lodge list, want RUNNING (%s)", i.Name, i.State, i.Error)
		}
		if other, dup := ranges[i.IDMap]; dup || i.IDMap == "" {
			t.Errorf("%s has id range %q, as %s does", i.Name, i.IDMap, other)
		}
		if other, dup := pids[i.PID]; dup || i.PID == 0 {
			t.Errorf("%s has init pid %d, as %s does", i.Name, i.PID, other)
		}
		ranges[i.IDMap], pids[i.PID] = i.Name, i.Name
	}

	e.must("exec", last, "--", "true")
	if got := meminfoValue(t, e.must("exec", last, "--", "cat", "/proc/meminfo"), "MemTotal"); got != 96*1024 {
		t.Errorf("MemTotal in %s is %d kB, want its 96 MiB limit", last, got)
	}
	if got := meminfoValue(t, e.must("exec", names[0], "--", "cat", "/proc/meminfo"), "MemTotal"); got == 96*1024 {
		t.Errorf("MemTotal in %s (no limit) is %d kB, the limit of %s", names[0], got, last)
	}

	e.inParallel(names, "stop", "--force")
	for _, i := range e.list() {
		if i.State != "STOPPED" {
			t.Errorf("%s is %s after lodge stop --force, want STOPPED", i.Name, i.State)
		}
	}
	e.assertNoLeftovers("")
}

// widenIDPool rewrites the env's host config for a pool of count id ranges,
// far from the other tests' pools (which hold 64).
func (e *env) widenIDPool(count int) {
	e.t.Helper()
	data, err := os.ReadFile(e.hostConfig)
	if err != nil {
		e.t.Fatal(err)
	}
	e.firstID = 1_200_000_000 + os.Getpid()%8*count*65536
	idmap := regexp.MustCompile(`\[idmap\]\nfirst = \d+\ncount = \d+\n`)
	if !idmap.Match(data) {
		e.t.Fatalf("no [idmap] table as newEnv writes it in %s:\n%s", e.hostConfig, data)
	}
	text := idmap.ReplaceAllLiteralString(string(data), fmt.Sprintf("[idmap]\nfirst = %d\ncount = %d\n", e.firstID, count))
	if err := os.WriteFile(e.hostConfig, []byte(text), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// inParallel runs `lodge ARGS... NAME` for every name, densityStarters at a
// time, and fails the test for each that fails.
func (e *env) inParallel(names []string, args ...string) {
	e.t.Helper()
	bounded.ForEach(len(names), densityStarters, func(i int) {
		if r := e.run(append(args, names[i])...); r.code != 0 {
			e.t.Errorf("lodge %s %s: %s", strings.Join(args, " "), names[i], r)
		}
	})
}
