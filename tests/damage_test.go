package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// A container's files damaged under it: its state file (ROOT/run/NAME.json)
// corrupt or deleted, its config.toml deleted, or both, with or without its
// monitor. The kernel knows the truth (the container's cgroup and id range),
// and lodge must tell it: list shows every container and marks the damaged
// one, stop and delete --force work, and the damaged container's id range is
// never handed to another container while its processes run.

type damage struct {
	name        string
	killMonitor bool
	apply       func(t *testing.T, e *env, name string)
	// what the damaged container's error in list must mention
	mentions []string
}

func corruptState(t *testing.T, e *env, name string) {
	writeFile(t, filepath.Join(e.root, "run", name+".json"), "{\"name\": \"x\", garbage")
}

func deleteState(t *testing.T, e *env, name string) {
	removeFile(t, filepath.Join(e.root, "run", name+".json"))
}

func deleteConfig(t *testing.T, e *env, name string) {
	removeFile(t, filepath.Join(e.root, "containers", name, "config.toml"))
}

var damages = []damage{
	{name: "corrupt-state", apply: corruptState, mentions: []string{"corrupt", "lodge stop"}},
	{name: "deleted-state", apply: deleteState, mentions: []string{"missing", "lodge stop"}},
	{name: "deleted-config", apply: deleteConfig, mentions: []string{"config.toml is missing", "delete --force"}},
	{name: "deleted-state-and-config", apply: func(t *testing.T, e *env, name string) {
		deleteState(t, e, name)
		deleteConfig(t, e, name)
	}, mentions: []string{"config.toml is missing", "state file"}},
	{name: "corrupt-state-no-monitor", killMonitor: true, apply: corruptState, mentions: []string{"corrupt"}},
	{name: "deleted-state-and-config-no-monitor", killMonitor: true, apply: func(t *testing.T, e *env, name string) {
		deleteState(t, e, name)
		deleteConfig(t, e, name)
	}, mentions: []string{"config.toml is missing", "state file"}},
}

func TestDamagedStateAndConfig(t *testing.T) {
	for _, d := range damages {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel() // each case has its own root, cgroup parent and id pool
			e := newEnv(t)
			e.createBusybox("healthy")
			e.must("start", "healthy")
			for _, op := range []string{"stop", "delete"} {
				t.Run(op, func(t *testing.T) {
					damaged := "dmg-" + op
					e.createBusybox(damaged)
					config, err := os.ReadFile(filepath.Join(e.root, "containers", damaged, "config.toml"))
					if err != nil {
						t.Fatal(err)
					}
					e.must("start", damaged)
					before := e.info(damaged)
					hostRoot := initHostRoot(t, before.PID)
					if d.killMonitor {
						killMonitor(t, e, damaged, before.MonitorPID)
					}
					d.apply(t, e, damaged)

					checkListMarks(t, e, damaged, before.PID, d.mentions)
					checkNoRangeReuse(t, e, damaged, hostRoot)

					switch op {
					case "stop":
						e.must("stop", "--timeout", "5s", damaged) // busybox init may need the kill without its console (docs/architecture.md)
						if i := findInfo(t, e, damaged); i.State != "STOPPED" {
							t.Fatalf("after stop: %+v", i)
						}
						if pids := processesUsingRange(hostRoot); len(pids) > 0 {
							t.Fatalf("processes %v of %s still run after stop", pids, damaged)
						}
						e.assertNoLeftovers(damaged)
						// Repaired, it starts again.
						writeFile(t, filepath.Join(e.root, "containers", damaged, "config.toml"), string(config))
						e.must("start", damaged)
						e.must("stop", "--force", damaged)
					case "delete":
						e.must("delete", "--force", damaged)
						for _, i := range e.list() {
							if i.Name == damaged {
								t.Fatalf("%s still listed after delete --force: %+v", damaged, i)
							}
						}
						if pids := processesUsingRange(hostRoot); len(pids) > 0 {
							t.Fatalf("processes %v of %s still run after delete --force", pids, damaged)
						}
						e.assertNoLeftovers(damaged)
					}
					if i := findInfo(t, e, "healthy"); i.State != "RUNNING" || i.Error != "" {
						t.Errorf("the healthy container suffered: %+v", i)
					}
				})
			}
		})
	}
}

// checkListMarks: list (json and table) shows every container, the damaged
// one RUNNING with its init and an error naming the problem and the fix.
func checkListMarks(t *testing.T, e *env, damaged string, initPID int, mentions []string) {
	t.Helper()
	i := findInfo(t, e, damaged)
	if i.State != "RUNNING" || i.PID != initPID {
		t.Errorf("damaged %s listed as %s pid %d, want RUNNING pid %d", damaged, i.State, i.PID, initPID)
	}
	for _, m := range mentions {
		if !strings.Contains(i.Error, m) {
			t.Errorf("error of damaged %s does not mention %q: %q", damaged, m, i.Error)
		}
	}
	if h := findInfo(t, e, "healthy"); h.State != "RUNNING" || h.Error != "" {
		t.Errorf("healthy container listed as %+v", h)
	}
	table := e.must("list")
	if !regexpFind(`(?m)^`+damaged+`\s+RUNNING\s+`+itoa(initPID), table) || !regexpFind(`(?m)^healthy\s+RUNNING`, table) {
		t.Errorf("list table:\n%s", table)
	}
	if !strings.Contains(table, damaged+": ") {
		t.Errorf("list table does not explain the damage of %s:\n%s", damaged, table)
	}
}

// checkNoRangeReuse creates a container while the damaged one runs: it must
// get another id range. It is deleted again.
func checkNoRangeReuse(t *testing.T, e *env, damaged string, hostRoot int) {
	t.Helper()
	e.createBusybox("newcomer")
	defer e.must("delete", "newcomer")
	i := findInfo(t, e, "newcomer")
	first, _, _ := strings.Cut(i.IDMap, "-")
	if first == "" || first == itoa(hostRoot) {
		t.Fatalf("newcomer got id range %q while %s runs with host root %d", i.IDMap, damaged, hostRoot)
	}
	e.must("start", "newcomer")
	if root := initHostRoot(t, findInfo(t, e, "newcomer").PID); root == hostRoot {
		t.Fatalf("newcomer runs with the ids of %s (host root %d)", damaged, root)
	}
	e.must("stop", "--force", "newcomer")
}

func findInfo(t *testing.T, e *env, name string) info {
	t.Helper()
	for _, i := range e.list() {
		if i.Name == name {
			return i
		}
	}
	t.Fatalf("%s is not listed", name)
	return info{}
}

func killMonitor(t *testing.T, e *env, name string, pid int) {
	t.Helper()
	if pid <= 0 {
		t.Fatalf("%s has no monitor to kill", name)
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		t.Fatal(err)
	}
	p.Kill()
	waitUntil(t, "the monitor of "+name+" to be gone", func() bool { return e.info(name).Monitor == "gone" })
}

// initHostRoot is the host id of container root in init's user namespace.
func initHostRoot(t *testing.T, pid int) int {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("/proc", itoa(pid), "uid_map"))
	fields := strings.Fields(string(data))
	if err != nil || len(fields) < 3 || fields[1] == "0" {
		t.Fatalf("uid_map of init %d: %q, %v", pid, data, err)
	}
	id, _ := strconv.Atoi(fields[1])
	return id
}

// processesUsingRange lists live processes in a user namespace whose root is
// host id hostRoot, read straight from /proc.
func processesUsingRange(hostRoot int) []int {
	return liveProcesses("uid_map", func(data string) bool {
		f := strings.Fields(data)
		return len(f) >= 3 && f[0] == "0" && f[1] == itoa(hostRoot)
	})
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func removeFile(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}

// TestReusedPidInState: a stale state file whose init pid now belongs to
// another process: lodge says STOPPED and never signals that process.
func TestReusedPidInState(t *testing.T) {
	e := newEnv(t)
	e.createBusybox("reuse")
	e.must("start", "reuse")
	statePath := filepath.Join(e.root, "run", "reuse.json")
	stale, err := os.ReadFile(statePath)
	if err != nil {
		t.Fatal(err)
	}
	e.must("stop", "reuse")
	other := startSleeper(t)
	// The old record, its init pid now another process's (start time differs).
	text := regexpReplace(`"pid": \d+`, string(stale), `"pid": `+itoa(other.Pid), 1)
	writeFile(t, statePath, text)
	if i := e.info("reuse"); i.State != "STOPPED" || i.PID != 0 {
		t.Fatalf("with a reused pid in its state: %+v", i)
	}
	e.expectFail(4, "not running", "stop", "reuse")
	e.must("delete", "--force", "reuse")
	if isZombie(other.Pid) {
		t.Fatalf("lodge killed process %d, which took the pid of the container's old init", other.Pid)
	}
}

// startSleeper starts a process that the test owns and ends.
func startSleeper(t *testing.T) *os.Process {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd.Process
}

// regexpReplace replaces the first n matches of pattern in text.
func regexpReplace(pattern, text, with string, n int) string {
	re := regexp.MustCompile(pattern)
	for range n {
		loc := re.FindStringIndex(text)
		if loc == nil {
			break
		}
		text = text[:loc[0]] + with + text[loc[1]:]
	}
	return text
}
