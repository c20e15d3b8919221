package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A host reboot leaves ROOT/run (on disk) with state files whose pids may
// name unrelated processes of the new boot, with the very same start time
// (pid 1's is the same in every boot, early processes often too). Each state
// file records the kernel's boot id; one from another boot counts as absent.
// The tests forge such a file: its processes are a sleeper of the test's
// own, alive, with its real pid and start time, so that only the boot id
// tells the record is stale.

const otherBootID = "00000000-0000-4000-8000-000000000000"

// TestStateFromEarlierBoot: a container whose state file is from another
// boot is STOPPED, with no error; stop says so and signals nothing; start
// works and records this boot; delete works.
func TestStateFromEarlierBoot(t *testing.T) {
	e := newEnv(t)
	e.createBusybox("boot1")
	e.must("start", "boot1")
	statePath := filepath.Join(e.root, "run", "boot1.json")
	recorded, err := os.ReadFile(statePath)
	if err != nil {
		t.Fatal(err)
	}
	thisBoot := hostBootID(t)
	if !strings.Contains(string(recorded), `"boot_id": "`+thisBoot+`"`) {
		t.Fatalf("the state file does not record this boot's id %s:\n%s", thisBoot, recorded)
	}
	e.must("stop", "--force", "boot1")

	sleeper := startSleeper(t)
	forged := earlierBootState(t, string(recorded), sleeper.Pid, thisBoot)
	writeFile(t, statePath, forged)
	for _, i := range []info{e.info("boot1"), findInfo(t, e, "boot1")} {
		if i.State != "STOPPED" || i.PID != 0 || i.Error != "" {
			t.Errorf("with a state file from another boot: state %s, pid %d, error %q; want STOPPED, 0, none", i.State, i.PID, i.Error)
		}
	}
	e.expectFail(4, "not running", "stop", "boot1")
	if isZombie(sleeper.Pid) {
		t.Fatalf("lodge stop signalled process %d, named by a state file from another boot", sleeper.Pid)
	}
	if _, err := os.Stat(statePath); !os.IsNotExist(err) {
		t.Errorf("stop left the stale state file (%v)", err)
	}

	writeFile(t, statePath, forged)
	e.must("start", "boot1")
	i := e.info("boot1")
	if i.State != "RUNNING" || i.PID == 0 || i.PID == sleeper.Pid || i.Error != "" {
		t.Errorf("after start over a stale state file: %+v", i)
	}
	if data, _ := os.ReadFile(statePath); !strings.Contains(string(data), `"boot_id": "`+thisBoot+`"`) {
		t.Errorf("start did not record this boot:\n%s", data)
	}
	e.must("stop", "--force", "boot1")
	writeFile(t, statePath, forged)
	e.must("delete", "boot1")
	if isZombie(sleeper.Pid) {
		t.Fatalf("lodge signalled process %d, named by a state file from another boot", sleeper.Pid)
	}
}

// TestViewsStateFromEarlierBoot: a views server record (run/lxcfs/
// server.json) from another boot names no server: lodge lxcfs stop signals
// nothing, and the next start runs a server of its own instead of waiting
// for the recorded "supervisor" to restart one.
func TestViewsStateFromEarlierBoot(t *testing.T) {
	requireFUSE(t)
	e := newEnv(t)
	e.createBusybox("boot2", "limits.memory=64MiB")
	sleeper := startSleeper(t)
	self := procIdentity(t, sleeper.Pid)
	forged := `{"server":` + self + `,"supervisor":` + self + `,"boot_id":"` + otherBootID + `"}`
	serverState := filepath.Join(e.root, "run", "lxcfs", "server.json")
	if err := os.MkdirAll(filepath.Dir(serverState), 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, serverState, forged)
	if s := e.viewsStatus(); s.ServerPID != 0 {
		t.Errorf("lodge lxcfs status names pid %d from a record of another boot", s.ServerPID)
	}
	e.must("lxcfs", "stop")
	if isZombie(sleeper.Pid) {
		t.Fatalf("lodge lxcfs stop signalled process %d, named by a record from another boot", sleeper.Pid)
	}

	writeFile(t, serverState, forged)
	out := e.must("start", "boot2")
	if strings.Contains(out, "unavailable") {
		t.Errorf("start did not get the views: %s", out)
	}
	if s := e.viewsStatus(); s.ServerPID == 0 || s.ServerPID == sleeper.Pid {
		t.Errorf("views server pid %d after start (the stale record named %d)", s.ServerPID, sleeper.Pid)
	}
	if got := meminfoValue(t, e.must("exec", "boot2", "--", "cat", "/proc/meminfo"), "MemTotal"); got != 65536 {
		t.Errorf("MemTotal inside is %d kB, want the 64 MiB limit", got)
	}
	if data, _ := os.ReadFile(serverState); !strings.Contains(string(data), hostBootID(t)) {
		t.Errorf("the new server did not record this boot: %s", data)
	}
}

// earlierBootState rewrites a container's state file as if written in
// another boot whose init and monitor had pid's pid and start time.
func earlierBootState(t *testing.T, recorded string, pid int, thisBoot string) string {
	t.Helper()
	id := procIdentity(t, pid)
	text := regexpReplace(`"init": \{[^}]*\}`, recorded, `"init": `+id, 1)
	text = regexpReplace(`"monitor": \{[^}]*\}`, text, `"monitor": `+id, 1)
	text = strings.Replace(text, thisBoot, otherBootID, 1)
	if text == recorded || !strings.Contains(text, otherBootID) {
		t.Fatalf("could not rewrite the state file:\n%s", recorded)
	}
	return text
}

// procIdentity is {"pid": N, "start": T} for a live process: its pid and
// start time (field 22 of /proc/PID/stat), as state files record processes.
func procIdentity(t *testing.T, pid int) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("/proc", itoa(pid), "stat"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	fields := strings.Fields(text[strings.LastIndexByte(text, ')')+1:])
	return `{"pid": ` + itoa(pid) + `, "start": ` + fields[19] + `}`
}

func hostBootID(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}
