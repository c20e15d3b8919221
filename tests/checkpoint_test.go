package tests

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"lodge/internal/testreq"
	"lodge/migrate"
	"lodge/rootfs"
)

// Checkpoints with the CRIU make deps installs: the preflight, and a dump
// of a running container that keeps it running.

func needCRIU(t *testing.T) {
	t.Helper()
	if _, err := migrate.FindCRIU(""); err != nil {
		testreq.Skip(t, "criu", err.Error())
	}
}

// TestExternalMountsMatchTheTree: every mount of a running container bound
// from outside it (host devices, the boot id, the console) is one that a
// checkpoint declares external (rootfs.ExternalMounts), so a bind added to
// the tree cannot be forgotten there.
func TestExternalMountsMatchTheTree(t *testing.T) {
	e := newEnv(t)
	e.createBusybox("x1")
	e.must("start", "x1")
	listed := map[string]bool{}
	for _, x := range rootfs.ExternalMounts("/proc") {
		listed[x.Target] = true
	}
	f, err := os.Open("/proc/" + strconv.Itoa(e.info("x1").PID) + "/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		line := sc.Text()
		fields, i := strings.Fields(line), strings.Index(line, " - ")
		if len(fields) < 5 || i < 0 {
			continue
		}
		fstype, target := strings.Fields(line[i+3:])[0], fields[4]
		if fstype == "devtmpfs" || target == rootfs.BootIDTarget || target == rootfs.ConsoleTarget {
			n++
			if !listed[target] {
				t.Errorf("%s (%s) is bound from outside the container but not in rootfs.ExternalMounts", target, fstype)
			}
		}
	}
	if n < 8 {
		t.Errorf("found only %d mounts from outside the container: the check reads the wrong tree", n)
	}
}

func TestCheckpointKeepsRunning(t *testing.T) {
	needCRIU(t)
	e := newEnv(t)
	e.createBusybox("k1")
	e.must("start", "k1")
	before := e.info("k1").PID
	if out := e.must("checkpoint", "k1", "--check"); !strings.Contains(out, "can be checkpointed") {
		t.Fatalf("checkpoint --check: %s", out)
	}
	var res struct {
		Dir      string `json:"dir"`
		Bytes    int64  `json:"bytes"`
		Blockers []any  `json:"blockers"`
	}
	if err := json.Unmarshal([]byte(e.must("checkpoint", "k1", "--format", "json")), &res); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"checkpoint.json", "inventory.img", "pstree.img", "dump.log"} {
		if _, err := os.Stat(filepath.Join(res.Dir, f)); err != nil {
			t.Errorf("the checkpoint lacks %s: %v", f, err)
		}
	}
	if !strings.HasPrefix(res.Dir, filepath.Join(e.root, "containers", "k1", "checkpoints")+"/") || res.Bytes == 0 {
		t.Errorf("checkpoint in %s, %d bytes", res.Dir, res.Bytes)
	}
	if i := e.info("k1"); i.State != "RUNNING" || i.PID != before {
		t.Fatalf("after the checkpoint k1 is %s with init %d (was %d)", i.State, i.PID, before)
	}
	e.must("exec", "k1", "--", "true")
	e.must("delete", "--force", "k1")
	if _, err := os.Stat(res.Dir); err == nil {
		t.Errorf("the checkpoint %s outlived its container", res.Dir)
	}
}

// counterEvery100ms is an init that counts in its own memory and writes
// each value to /counter, every 100 ms: after a restore it goes on from
// the value it had at the checkpoint, where a new boot would start at 1.
const counterEvery100ms = `init.command=/bin/sh -c 'i=0; while :; do i=$((i+1)); echo $i > /counter.new; mv /counter.new /counter; sleep 0.1; done'`

func TestCheckpointRestoreBusybox(t *testing.T) {
	needCRIU(t)
	for _, storage := range []string{"overlay", "dir"} {
		t.Run(storage, func(t *testing.T) { checkpointRestoreBusybox(t, storage) })
	}
}

// uptimeOf is the container's /proc/uptime, in seconds.
func uptimeOf(t *testing.T, e *env, name string) float64 {
	t.Helper()
	f := strings.Fields(e.must("exec", name, "--", "cat", "/proc/uptime"))
	if len(f) == 0 {
		t.Fatalf("/proc/uptime of %s is empty", name)
	}
	up, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		t.Fatalf("/proc/uptime of %s: %v", name, err)
	}
	return up
}

func checkpointRestoreBusybox(t *testing.T, storage string) {
	e := newEnv(t)
	e.useStorage(storage)
	e.createBusybox("cr", counterEvery100ms, "limits.memory=64MiB")
	e.must("start", "cr")
	waitUntil(t, "the counter to pass 5", func() bool {
		r := e.run("exec", "cr", "--", "cat", "/counter")
		n, _ := strconv.Atoi(strings.TrimSpace(r.stdout))
		return n > 5
	})
	e.expectFail(4, "running", "restore", "cr")
	// Past 3 s, so that an uptime counted from the restore would fall short.
	waitUntil(t, "an uptime of 3 s", func() bool { return uptimeOf(t, e, "cr") > 3 })
	upBefore, checkpointed := uptimeOf(t, e, "cr"), time.Now()
	before := readCounter(t, e, "cr")
	e.must("checkpoint", "cr")
	e.must("stop", "--force", "cr")
	out := e.must("restore", "cr")
	if !strings.Contains(out, "Restored cr from") {
		t.Errorf("restore said: %s", out)
	}
	i := e.info("cr")
	if i.State != "RUNNING" || i.PID == 0 {
		t.Fatalf("after restore cr is %s, pid %d", i.State, i.PID)
	}
	if after := readCounter(t, e, "cr"); after <= before {
		t.Errorf("the counter went from %d at the checkpoint to %d after the restore: not continued", before, after)
	}
	first := readCounter(t, e, "cr")
	waitUntil(t, "the restored counter to count", func() bool { return readCounter(t, e, "cr") > first })
	if out := e.must("exec", "cr", "--", "sh", "-c", "echo written > /root/w && cat /root/w"); !strings.Contains(out, "written") {
		t.Errorf("the restored root is not writable: %s", out)
	}
	if mem := e.must("exec", "cr", "--", "grep", "MemTotal", "/proc/meminfo"); !strings.Contains(mem, "65536 kB") {
		t.Errorf("/proc/meminfo after restore is not the container's: %s", mem)
	}
	// The container's uptime goes on from the checkpoint (the time it was
	// stopped not counted), and is not the host's.
	hostUp, _ := os.ReadFile("/proc/uptime")
	host, _ := strconv.ParseFloat(strings.Fields(string(hostUp))[0], 64)
	if up := uptimeOf(t, e, "cr"); up < upBefore || up > upBefore+time.Since(checkpointed).Seconds()+1 || up >= host {
		t.Errorf("/proc/uptime after restore is %.2f s: before the checkpoint %.2f s (%.2f s ago), the host's %.2f s",
			up, upBefore, time.Since(checkpointed).Seconds(), host)
	}
	// sh as init takes no stop signal: --force, as for any such init.
	e.must("stop", "--force", "cr")
	e.assertNoLeftovers("cr")
	// The checkpoint stays, and restores again.
	e.must("restore", "cr")
	if n := readCounter(t, e, "cr"); n <= before {
		t.Errorf("second restore: counter %d, at the checkpoint %d", n, before)
	}
	e.must("stop", "--force", "cr")
}

// A container with a NIC is checkpointed and restored with it: the same
// MAC and address, its name still resolving, a TCP connection to another
// container carrying on, and its bandwidth limit applied again.
func TestCheckpointRestoreWithNIC(t *testing.T) {
	needCRIU(t)
	e := newEnv(t)
	e.must("network", "create", "cn", "--subnet", "10.201.32.0/24")
	e.createBusybox("cn1", "network.0.network=cn", "limits.network.egress=20Mbit")
	e.createBusybox("cn2", "network.0.network=cn")
	e.must("start", "cn1")
	e.must("start", "cn2")
	waitUntil(t, "cn1 to reach cn2 by name", func() bool { return e.run("exec", "cn1", "--", "ping", "-c1", "-W1", "cn2").code == 0 })
	addr := e.info("cn1").NICs[0].Address4
	mac := strings.TrimSpace(e.must("exec", "cn1", "--", "cat", "/sys/class/net/eth0/address"))

	// A TCP connection from cn1 to cn2 that sends "one" now and "two" once
	// /go exists in cn1, across the checkpoint.
	e.must("exec", "cn2", "--", "sh", "-c", "(sleep 600 | nc -l -p 7000 >/tmp/got) </dev/null >/dev/null 2>&1 &")
	waitUntil(t, "cn2 to listen", func() bool { return strings.Contains(e.must("exec", "cn2", "--", "netstat", "-tln"), ":7000") })
	e.must("exec", "cn1", "--", "sh", "-c", "((echo one; while [ ! -e /go ]; do sleep 0.1; done; echo two) | nc cn2 7000) </dev/null >/dev/null 2>&1 &")
	waitUntil(t, "the first line at cn2", func() bool { return e.must("exec", "cn2", "--", "cat", "/tmp/got") == "one\n" })

	e.must("checkpoint", "cn1", "--stop")
	e.assertNoNICLeftovers("cn1")
	e.must("restore", "cn1")
	if got := e.info("cn1").NICs[0].Address4; got != addr || got == "" {
		t.Errorf("after restore cn1 has addresses %v, before %v", got, addr)
	}
	if got := strings.TrimSpace(e.must("exec", "cn1", "--", "cat", "/sys/class/net/eth0/address")); got != mac {
		t.Errorf("after restore eth0's MAC is %s, before %s", got, mac)
	}
	e.must("exec", "cn1", "--", "touch", "/go")
	waitUntil(t, "the second line at cn2, on the restored connection", func() bool {
		return e.must("exec", "cn2", "--", "cat", "/tmp/got") == "one\ntwo\n"
	})
	e.must("exec", "cn2", "--", "ping", "-c1", "-W2", "cn1")
	// The egress limit is in the kernel again: a tbf on the NIC's ifb
	// ("li" and the host veth's name after its "lv").
	hostIf := e.info("cn1").NICs[0].HostIf
	qdisc, err := exec.Command("tc", "qdisc", "show", "dev", "li"+strings.TrimPrefix(hostIf, "lv")).CombinedOutput()
	if err != nil || !strings.Contains(string(qdisc), "rate 20Mbit") {
		t.Errorf("after restore the egress limit is not applied (tc qdisc show of %s's ifb: %v):\n%s", hostIf, err, qdisc)
	}
	e.must("stop", "--force", "cn1")
	e.assertNoLeftovers("cn1")
	e.assertNoNICLeftovers("cn1")
	e.must("stop", "--force", "cn2")
}

// A restore is refused, leaving nothing, when there is no checkpoint or
// when the container's NIC is no longer what the checkpoint has; with the
// configuration put back, the same checkpoint restores.
func TestRestoreRefusals(t *testing.T) {
	needCRIU(t)
	e := newEnv(t)
	e.must("network", "create", "rn", "--subnet", "10.201.31.0/24")
	e.createBusybox("rn", "network.0.network=rn", "network.0.ipv4=10.201.31.10")
	e.expectFail(3, "has no checkpoint", "restore", "rn")
	e.must("start", "rn")
	e.must("checkpoint", "rn", "--stop")
	e.must("config", "set", "rn", "network.0.ipv4=10.201.31.11")
	e.expectFail(2, "eth0 had IPv4 10.201.31.10, now would get 10.201.31.11", "restore", "rn")
	if i := e.info("rn"); i.State != "STOPPED" {
		t.Errorf("after a refused restore rn is %s", i.State)
	}
	e.assertNoLeftovers("rn")
	e.assertNoNICLeftovers("rn")
	e.must("config", "set", "rn", "network.0.ipv4=10.201.31.10")
	e.must("restore", "rn")
	e.must("exec", "rn", "--", "true")
	e.must("stop", "--force", "rn")
	e.assertNoNICLeftovers("rn")
}

// A stateful stop saves the processes, and the next start resumes them
// (and says so); --fresh boots instead. checkpoint --stop stops too.
func TestStatefulStopAndStart(t *testing.T) {
	needCRIU(t)
	e := newEnv(t)
	e.createBusybox("ss", counterEvery100ms)
	e.must("start", "ss")
	waitUntil(t, "the counter to pass 5", func() bool {
		r := e.run("exec", "ss", "--", "cat", "/counter")
		n, _ := strconv.Atoi(strings.TrimSpace(r.stdout))
		return n > 5
	})
	before := readCounter(t, e, "ss")
	if out := e.must("stop", "ss", "--stateful"); !strings.Contains(out, "lodge start ss resumes them") {
		t.Errorf("stop --stateful said: %s", out)
	}
	if i := e.info("ss"); i.State != "STOPPED" {
		t.Fatalf("after stop --stateful ss is %s", i.State)
	}
	r := e.run("start", "ss")
	if r.code != 0 || !strings.Contains(r.stderr+r.stdout, "resuming ss from its checkpoint") {
		t.Fatalf("start after a stateful stop: %s", r)
	}
	if n := readCounter(t, e, "ss"); n <= before {
		t.Errorf("resumed counter %d, %d before the stateful stop", n, before)
	}
	e.must("stop", "--force", "ss")
	// The marker is gone: this start boots (the counter starts again).
	e.must("start", "ss")
	waitUntil(t, "a booted counter", func() bool {
		r := e.run("exec", "ss", "--", "cat", "/counter")
		n, err := strconv.Atoi(strings.TrimSpace(r.stdout))
		return err == nil && n > 0
	})
	if n := readCounter(t, e, "ss"); n >= before+50 {
		t.Logf("note: counter %d after a fresh boot", n)
	}
	// checkpoint --stop, then --fresh ignores nothing (no marker), restore resumes.
	out := e.must("checkpoint", "ss", "--stop")
	if !strings.Contains(out, "and stopped it") || e.info("ss").State != "STOPPED" {
		t.Fatalf("checkpoint --stop: %s, state %s", out, e.info("ss").State)
	}
	e.must("restore", "ss")
	if e.info("ss").State != "RUNNING" {
		t.Fatal("restore after checkpoint --stop did not run")
	}
	e.must("stop", "--force", "ss")
	// A stateful stop, then --fresh boots and keeps the checkpoint.
	e.must("start", "ss")
	e.must("stop", "ss", "--stateful")
	e.must("start", "ss", "--fresh")
	if e.info("ss").State != "RUNNING" {
		t.Fatal("start --fresh did not boot")
	}
	e.must("stop", "--force", "ss")
	e.assertNoLeftovers("ss")
}

// A stock Debian with systemd, on dir storage, checkpointed with --stop
// and restored: running, no failed unit, journald and logind answer. The
// empty cgroups systemd watches are made again before CRIU runs.
func TestCheckpointRestoreDebian(t *testing.T) {
	needCRIU(t)
	e := newEnv(t)
	e.useStorage("dir")
	e.must("create", "deb", "--template", "debian")
	e.must("start", "deb")
	waitRunning(t, e, "deb")
	// Ten times in a row on the same container: a restored container must
	// checkpoint as a booted one does (its console, its subcgroups).
	for round := 1; round <= 10; round++ {
		e.must("checkpoint", "deb", "--stop")
		e.must("restore", "deb")
		if state := strings.TrimSpace(e.run("exec", "deb", "--", "systemctl", "is-system-running").stdout); state != "running" {
			t.Fatalf("round %d: after restore systemd is %q", round, state)
		}
		if failed := e.must("exec", "deb", "--", "systemctl", "--failed", "--no-legend"); strings.TrimSpace(failed) != "" {
			t.Fatalf("round %d: failed units after restore:\n%s", round, failed)
		}
		e.must("exec", "deb", "--", "journalctl", "-n", "1", "--no-pager")
		e.must("exec", "deb", "--", "loginctl", "list-sessions", "--no-legend")
	}
	// Every copy of /dev/console, those in systemd-logind's own mount
	// namespace included, is the live console after restores: what is
	// written there shows on lodge console.
	e.must("exec", "deb", "--", "sh", "-c", "nsenter -t $(pidof systemd-logind) -m sh -c 'echo restored-console-works >/dev/console'")
	consoleShows(t, e, "deb", "restored-console-works")
	e.must("stop", "deb")
	e.assertNoLeftovers("deb")
}

// A command left running by lodge exec with its output going to a file of
// the host holds that file inside the container: the preflight names it
// (CRIU would fail with "Can't lookup mount"), and the container keeps
// running; once it has ended, the checkpoint works.
func TestPreflightNamesExecHostFile(t *testing.T) {
	needCRIU(t)
	e := newEnv(t)
	e.createBusybox("hf")
	e.must("start", "hf")
	out, err := os.Create(filepath.Join(t.TempDir(), "exec-output"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := e.command(context.Background(), "exec", "hf", "--", "sh", "-c", "sleep 600 </dev/null & echo $!")
	cmd.Stdout = out
	if err := cmd.Run(); err != nil {
		t.Fatalf("lodge exec with its output to a host file: %v", err)
	}
	r := e.expectFail(4, "(sleep): file of the host "+out.Name()+" (fd 1)", "checkpoint", "hf", "--check")
	t.Logf("refused: %s", r.stderr)
	if i := e.info("hf"); i.State != "RUNNING" {
		t.Fatalf("after the refusal hf is %s", i.State)
	}
	endPrintedPid(t, e, "hf", out.Name())
	e.must("checkpoint", "hf")
	e.must("stop", "--force", "hf")
}

// endPrintedPid ends the process whose pid (inside the container) a lodge
// exec wrote to the file printed, and waits for it to be gone. By pid, not
// `pidof sleep`: that would also name a counter's own short sleeps, which
// may end before the kill reaches them.
func endPrintedPid(t *testing.T, e *env, name, printed string) {
	t.Helper()
	b, err := os.ReadFile(printed)
	if err != nil {
		t.Fatal(err)
	}
	pid := strings.TrimSpace(string(b))
	e.must("exec", name, "--", "kill", pid)
	waitUntil(t, "process "+pid+" to end", func() bool { return e.run("exec", name, "--", "test", "-e", "/proc/"+pid).code != 0 })
}

// A process holding an io_uring instance (allowed by the container's
// seccomp filter only when asked for) is named by the preflight of a
// checkpoint, which refuses before anything is frozen: the container keeps
// running, thawed, and checkpoints once the process has ended.
func TestPreflightNamesIOUringHolder(t *testing.T) {
	needCRIU(t)
	e := newEnv(t)
	e.createBusybox("ur", "security.syscalls.allow=io_uring_setup")
	e.must("start", "ur")
	e.installProbe("ur", buildProbe(t))
	e.must("exec", "ur", "--", "sh", "-c", "/lodge-probe ring >/ring.out 2>&1 </dev/null &")
	waitUntil(t, "the probe to hold its ring", func() bool {
		return strings.Contains(e.run("exec", "ur", "--", "cat", "/ring.out").stdout, "ring ok")
	})
	r := e.expectFail(4, "(lodge-probe): io_uring instance (fd ", "checkpoint", "ur")
	t.Logf("refused: %s", r.stderr)
	if i := e.info("ur"); i.State != "RUNNING" {
		t.Fatalf("after the refusal ur is %s, want RUNNING (not frozen)", i.State)
	}
	e.must("exec", "ur", "--", "true")
	e.must("exec", "ur", "--", "sh", "-c", "kill $(pidof lodge-probe)")
	waitUntil(t, "the ring holder to end", func() bool { return e.run("exec", "ur", "--", "pidof", "lodge-probe").code != 0 })
	e.must("checkpoint", "ur")
	e.must("stop", "--force", "ur")
}
