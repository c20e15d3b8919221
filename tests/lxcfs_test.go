package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"lodge/internal/testreq"
)

// TestViewsBusybox: with 256 MiB and cpuset 0, a busybox container sees its
// limits in every virtualized file, and all CPU counts agree; a process in a
// nested cgroup sees the same; the views are read-only; a host process
// reading the server's tree gets the host's files.
func TestViewsBusybox(t *testing.T) {
	requireFUSE(t)
	e := newEnv(t)
	e.createBusybox("v1", "limits.memory=256MiB", "limits.cpuset=0")
	e.must("start", "v1")
	started := time.Now()

	sh := func(script string) string { return e.must("exec", "v1", "--", "sh", "-c", script) }
	if got := meminfoValue(t, sh("cat /proc/meminfo"), "MemTotal"); got != 262144 {
		t.Errorf("MemTotal %d kB, want 262144", got)
	}
	counts := map[string]string{
		"cpuinfo processors": "grep -c ^processor /proc/cpuinfo",
		"stat cpuN lines":    "grep -c '^cpu[0-9]' /proc/stat",
		"cpuN directories":   "ls /sys/devices/system/cpu | grep -c '^cpu[0-9]'",
		"nproc":              "nproc",
		"nproc --all":        "nproc --all",
	}
	for what, script := range counts {
		if got := strings.TrimSpace(sh(script)); got != "1" {
			t.Errorf("%s: %q, want 1", what, got)
		}
	}
	for _, list := range []string{"online", "possible", "present"} {
		if got := strings.TrimSpace(sh("cat /sys/devices/system/cpu/" + list)); got != "0" {
			t.Errorf("/sys/devices/system/cpu/%s = %q, want 0", list, got)
		}
	}
	// cat uses sendfile, which FUSE serves through the page cache.
	up := strings.Fields(sh("cat /proc/uptime"))
	if len(up) != 2 {
		t.Fatalf("/proc/uptime: %v", up)
	}
	if secs, _ := strconv.ParseFloat(up[0], 64); secs < 0 || secs > time.Since(started).Seconds()+5 {
		t.Errorf("uptime %v s does not count from the container's start (%v ago)", secs, time.Since(started))
	}
	btime := statField(t, sh("cat /proc/stat"), "btime")
	if d := time.Since(time.Unix(btime, 0)); d < -2*time.Second || d > time.Since(started)+5*time.Second {
		t.Errorf("stat btime %d is not the container's start (%v ago)", btime, d)
	}
	if !regexpFind(`^\d+\.\d\d \d+\.\d\d \d+\.\d\d \d+/\d+ \d+\n$`, sh("cat /proc/loadavg")) {
		t.Errorf("loadavg: %q", sh("cat /proc/loadavg"))
	}
	if !strings.HasPrefix(sh("cat /proc/swaps"), "Filename") {
		t.Errorf("swaps: %q", sh("cat /proc/swaps"))
	}
	if strings.Contains(sh("cat /proc/diskstats"), "loop0") {
		t.Errorf("diskstats shows the host's devices:\n%s", sh("cat /proc/diskstats"))
	}

	// A reader in a nested cgroup (as a systemd service would be) is still
	// in the container.
	nested := sh("mkdir -p /sys/fs/cgroup/unified/svc /sys/fs/cgroup/memory/svc && " +
		"echo $$ > /sys/fs/cgroup/unified/svc/cgroup.procs && echo $$ > /sys/fs/cgroup/memory/svc/cgroup.procs && " +
		"cat /proc/self/cgroup | grep -E '^0::|memory'; cat /proc/meminfo")
	if !strings.Contains(nested, "0::/svc") || meminfoValue(t, nested, "MemTotal") != 262144 {
		t.Errorf("a reader in a nested cgroup sees the wrong view:\n%s", nested)
	}

	if r := e.run("exec", "v1", "--", "sh", "-c", "echo x > /proc/meminfo"); r.code == 0 || !strings.Contains(r.stderr, "Read-only") {
		t.Errorf("writing /proc/meminfo: %s", r)
	}
	host, _ := os.ReadFile("/proc/meminfo")
	served, err := os.ReadFile(filepath.Join(e.root, "run/lxcfs/mnt/proc/meminfo"))
	if err != nil || meminfoValue(t, string(served), "MemTotal") != meminfoValue(t, string(host), "MemTotal") {
		t.Errorf("a host process reading the server's meminfo does not get the host's (err %v)", err)
	}
}

// TestViewsQuotaAndDisabled: lxcfs.cpu_quota_view = true shows the CPU
// quota (rounded up) as the CPU count; without it the cpuset counts;
// lxcfs.enabled = false leaves the host's files.
func TestViewsQuotaAndDisabled(t *testing.T) {
	if runtime.NumCPU() < 2 {
		testreq.Skip(t, "cpus2", "needs 2 host CPUs to tell the quota from the cpuset; this machine has 1")
	}
	requireFUSE(t)
	e := newEnv(t)
	e.createBusybox("q1", "limits.cpuset=0-1", "limits.cpu=1", "lxcfs.cpu_quota_view=true")
	e.createBusybox("q2", "limits.cpuset=0-1", "limits.cpu=1")
	e.createBusybox("q3", "limits.memory=256MiB", "lxcfs.enabled=false")
	for _, name := range []string{"q1", "q2", "q3"} {
		e.must("start", name)
	}
	count := func(name string) string {
		return strings.Join(strings.Fields(e.must("exec", name, "--", "sh", "-c",
			"grep -c ^processor /proc/cpuinfo; grep -c '^cpu[0-9]' /proc/stat; cat /sys/devices/system/cpu/online")), " ")
	}
	if got := count("q1"); got != "1 1 0" {
		t.Errorf("with the quota view, 1 CPU of quota: processors, stat lines, online = %q, want 1 1 0", got)
	}
	if got := count("q2"); got != "2 2 0-1" {
		t.Errorf("without the quota view, cpuset 0-1: %q, want 2 2 0-1", got)
	}
	// Turned on while it runs, the quota view takes effect within a second.
	e.must("config", "set", "q2", "lxcfs.cpu_quota_view=true")
	waitUntil(t, "the quota view on a running container", func() bool { return count("q2") == "1 1 0" })
	host, _ := os.ReadFile("/proc/meminfo")
	if got := meminfoValue(t, e.must("exec", "q3", "--", "cat", "/proc/meminfo"), "MemTotal"); got != meminfoValue(t, string(host), "MemTotal") {
		t.Errorf("with lxcfs.enabled = false, MemTotal %d kB is not the host's", got)
	}
}

// TestViewsSurviveServerKill: kill -9 of the server while two containers
// read /proc in a loop (one of them also from a second mount namespace, as
// a systemd service has): reads recover within 5 s, no container restarts;
// lodge lxcfs restart (an upgrade) keeps them working too.
func TestViewsSurviveServerKill(t *testing.T) {
	requireFUSE(t)
	e := newEnv(t)
	names := []string{"k1", "k2"}
	pids := map[string]int{}
	for _, name := range names {
		e.createBusybox(name, "limits.memory=128MiB")
		e.must("start", name)
		pids[name] = e.info(name).PID
	}
	// A reader in its own mount namespace writes what it reads to /tmp/ns,
	// after a sequence number that tells each read from the one before.
	e.must("exec", "k1", "--", "sh", "-c",
		"unshare -m sh -c 'i=0; while :; do i=$((i+1)); { echo $i; head -1 /proc/meminfo; } > /tmp/ns.new 2>&1; mv /tmp/ns.new /tmp/ns; usleep 50000; done' >/dev/null 2>&1 &")
	readsOK := func(name string) bool {
		r := e.run("exec", name, "--", "head", "-1", "/proc/meminfo")
		return r.code == 0 && strings.Contains(r.stdout, "131072 kB")
	}
	nsRead := func() (seq int, ok bool) {
		r := e.run("exec", "k1", "--", "cat", "/tmp/ns")
		first, _, _ := strings.Cut(r.stdout, "\n")
		seq, _ = strconv.Atoi(first)
		return seq, r.code == 0 && strings.Contains(r.stdout, "131072 kB")
	}
	nsOK := func() bool { _, ok := nsRead(); return ok }
	waitUntil(t, "the second mount namespace reads its view", nsOK)

	server := e.viewsStatus().ServerPID
	if err := syscall.Kill(server, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	deadline := killed.Add(5 * time.Second)
	for _, name := range names {
		for !readsOK(name) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: /proc/meminfo still fails 5 s after kill -9 of the server: %s", name, e.run("exec", name, "--", "head", "-1", "/proc/meminfo"))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	t.Logf("reads recovered %v after kill -9", time.Since(killed))
	// The loop's file is replaced every 50 ms: wait for a good read made
	// after this point (a later sequence number), not one from before the kill.
	recovered, _ := nsRead()
	for seq, ok := nsRead(); seq <= recovered || !ok; seq, ok = nsRead() {
		if time.Now().After(deadline.Add(time.Second)) {
			t.Fatalf("the second mount namespace still fails: %s", e.run("exec", "k1", "--", "cat", "/tmp/ns"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if now := e.viewsStatus().ServerPID; now == 0 || now == server {
		t.Errorf("server pid after the kill: %d (was %d)", now, server)
	}

	before := e.viewsStatus().ServerPID
	out := e.must("lxcfs", "restart")
	if after := e.viewsStatus().ServerPID; after == before || !strings.Contains(out, strconv.Itoa(after)) {
		t.Errorf("lodge lxcfs restart: %q; server pid %d → %d", out, before, after)
	}
	for _, name := range names {
		waitUntil(t, name+" reads after lodge lxcfs restart", func() bool { return readsOK(name) })
		if pid := e.info(name).PID; pid != pids[name] {
			t.Errorf("%s restarted: init pid %d → %d", name, pids[name], pid)
		}
	}
	e.expectFail(4, "running containers use the views (k1, k2)", "lxcfs", "stop")
}

// TestViewsBounded: eight readers in a tight loop in one container do not
// grow the server's memory without bound, and another container's reads
// keep working meanwhile.
func TestViewsBounded(t *testing.T) {
	requireFUSE(t)
	e := newEnv(t)
	e.createBusybox("b1", "limits.memory=128MiB")
	e.createBusybox("b2", "limits.memory=64MiB")
	e.must("start", "b1")
	e.must("start", "b2")
	server := e.viewsStatus().ServerPID
	rssBefore := rssKiB(t, server)
	const loops = 8
	script := "for f in /proc/meminfo /proc/cpuinfo /proc/stat /proc/uptime /proc/loadavg; do " +
		"(end=$(($(cut -d. -f1 /proc/uptime)+6)); while [ $(cut -d. -f1 /proc/uptime) -lt $end ]; do cat $f >/dev/null; done) & done; wait"
	done := make(chan result, loops)
	for range loops {
		go func() { done <- e.run("exec", "b1", "--", "sh", "-c", script) }()
	}
	for range 20 {
		if got := meminfoValue(t, e.must("exec", "b2", "--", "cat", "/proc/meminfo"), "MemTotal"); got != 65536 {
			t.Errorf("b2 MemTotal under load: %d kB", got)
		}
		time.Sleep(100 * time.Millisecond) // spreads the checks over the readers' 6 s: pacing, not synchronisation
	}
	for range loops {
		if r := <-done; r.code != 0 {
			t.Errorf("reader: %s", r)
		}
	}
	rssAfter := rssKiB(t, server)
	t.Logf("server RSS %d KiB before, %d KiB after %d×5 readers for 6 s", rssBefore, rssAfter, loops)
	if rssAfter > rssBefore+32*1024 {
		t.Errorf("the server grew from %d to %d KiB under the read loop", rssBefore, rssAfter)
	}
	if pid := e.viewsStatus().ServerPID; pid != server {
		t.Errorf("the server restarted under load (pid %d → %d)", server, pid)
	}
}

type viewsStatus struct {
	Running   bool `json:"running"`
	ServerPID int  `json:"server_pid"`
}

func (e *env) viewsStatus() viewsStatus {
	e.t.Helper()
	var s viewsStatus
	if err := json.Unmarshal([]byte(e.must("lxcfs", "status", "--format", "json")), &s); err != nil {
		e.t.Fatal(err)
	}
	return s
}

// meminfoValue returns a meminfo field in kB.
func meminfoValue(t *testing.T, text, key string) int {
	t.Helper()
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, key+":"); ok {
			f := strings.Fields(rest)
			n, err := strconv.Atoi(f[0])
			if err != nil {
				t.Fatalf("%s: %q", key, line)
			}
			return n
		}
	}
	t.Fatalf("no %s in:\n%s", key, text)
	return 0
}

// statField returns a "key N" line's number from /proc/stat.
func statField(t *testing.T, text, key string) int64 {
	t.Helper()
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, key+" "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(rest), 10, 64)
			if err == nil {
				return n
			}
		}
	}
	t.Fatalf("no %s in /proc/stat:\n%s", key, text)
	return 0
}

func rssKiB(t *testing.T, pid int) int {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	return meminfoValue(t, string(data), "VmRSS")
}

// TestViewsDebian: in a Debian container with limits, procps's free, top,
// nproc and uptime and glibc's getconf show the container's values, also
// from a nested cgroup (a transient systemd service).
func TestViewsDebian(t *testing.T) {
	requireFUSE(t)
	e := newEnv(t)
	e.must("create", "dv", "--template", "debian", "-c", "limits.memory=512MiB", "-c", "limits.cpuset=0")
	e.must("start", "dv")
	waitRunning(t, e, "dv")
	sh := func(script string) string { return e.must("exec", "dv", "--", "sh", "-c", script) }

	if free := sh("free -m"); !regexpFind(`(?m)^Mem:\s+512\s`, free) {
		t.Errorf("free -m does not show 512 MiB total:\n%s", free)
	}
	if top := sh("top -bn1 | head -5"); !regexpFind(`MiB Mem :\s+512\.0 total`, top) || !regexpFind(`up\s+0 min|up\s+\d+ min|up\s+\d+:\d\d|up\s+\d+ sec`, top) {
		t.Errorf("top -bn1 does not show the container's memory and uptime:\n%s", top)
	}
	for _, script := range []string{"nproc", "nproc --all", "getconf _NPROCESSORS_ONLN", "getconf _NPROCESSORS_CONF"} {
		if got := strings.TrimSpace(sh(script)); got != "1" {
			t.Errorf("%s = %q, want 1", script, got)
		}
	}
	if up := sh("uptime"); !regexpFind(`up\s+(0 min|\d+ min|\d+:\d\d)`, up) || strings.Contains(up, "day") {
		t.Errorf("uptime does not count from the container's start: %s", up)
	}
	nested := sh("systemd-run --wait --pipe --quiet sh -c 'cat /proc/self/cgroup; free -m'")
	if !strings.Contains(nested, "run-") || !regexpFind(`(?m)^Mem:\s+512\s`, nested) {
		t.Errorf("from a transient service (nested cgroup), free -m shows:\n%s", nested)
	}
}

// TestViewsForgetStoppedContainers: the server keeps a tree per container
// name only while the container runs; the next start drops the others.
func TestViewsForgetStoppedContainers(t *testing.T) {
	requireFUSE(t)
	e := newEnv(t)
	for _, name := range []string{"p1", "p2", "p3"} {
		e.createBusybox(name, "limits.memory=64MiB")
	}
	e.must("start", "p1")
	e.must("start", "p2")
	e.must("stop", "--force", "p1")
	e.must("start", "p3")
	entries, err := os.ReadDir(filepath.Join(e.viewsMount(), "containers"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, entry := range entries {
		names = append(names, entry.Name())
	}
	if strings.Join(names, " ") != "p2 p3" {
		t.Errorf("the server's trees after p1 stopped and p3 started: %v, want [p2 p3]", names)
	}
	for _, name := range []string{"p2", "p3"} {
		if got := meminfoValue(t, e.must("exec", name, "--", "cat", "/proc/meminfo"), "MemTotal"); got != 65536 {
			t.Errorf("%s MemTotal %d kB", name, got)
		}
	}
	e.must("start", "p1")
	if got := meminfoValue(t, e.must("exec", "p1", "--", "cat", "/proc/meminfo"), "MemTotal"); got != 65536 {
		t.Errorf("p1 after a restart: MemTotal %d kB", got)
	}
}

// requireFUSE skips, saying why, where the kernel offers no FUSE: the views
// need /dev/fuse (containers then start with the host's /proc files).
func requireFUSE(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		testreq.Skipf(t, "fuse", "no /dev/fuse on this machine (%v): the /proc views cannot be tested; modprobe fuse", err)
	}
}

// TestViewsAfterReboot: a reboot from inside starts the uptime again.
func TestViewsAfterReboot(t *testing.T) {
	requireFUSE(t)
	e := newEnv(t)
	e.createBusybox("rb", "limits.memory=64MiB")
	e.must("start", "rb")
	uptime := func() float64 {
		f := strings.Fields(e.must("exec", "rb", "--", "cat", "/proc/uptime"))
		secs, _ := strconv.ParseFloat(f[0], 64)
		return secs
	}
	waitUntil(t, "3 s of uptime", func() bool { return uptime() >= 3 })
	before := e.info("rb").PID
	e.run("exec", "rb", "--", "reboot")
	waitFor(t, e, "rb", func(i info) bool { return i.State == "RUNNING" && i.PID != before && i.PID != 0 })
	rebooted := time.Now()
	if up := uptime(); up > time.Since(rebooted).Seconds()+2 {
		t.Errorf("uptime %.2f s after a reboot %v ago: it counts from the first boot", up, time.Since(rebooted))
	}
}
