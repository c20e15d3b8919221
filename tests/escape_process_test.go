package tests

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"lodge/internal/testreq"

	"golang.org/x/sys/unix"
)

// The process part of the escape suite: what root in a container tries with
// descriptors, keyrings, system calls and host processes. Every attempt must
// fail; the test fails if one succeeds. The probe (tests/probe) makes the raw
// system calls inside and reports the kernel's answers.

// deniedByDefault is what each probe of `probe syscalls` must answer in a
// container with the default filter. EPERM for kexec and modules differs from
// what this kernel answers without the filter (it has neither: ENOSYS), and
// keyctl's ENOSYS from what it would answer (success): the filter is what
// refuses them.
var deniedByDefault = map[string]string{
	"kexec_load": "EPERM", "kexec_file_load": "EPERM",
	"init_module": "EPERM", "finit_module": "EPERM", "delete_module": "EPERM",
	"open_by_handle_at": "EPERM", "bpf": "EPERM", "perf_event_open": "EPERM",
	"userfaultfd": "EPERM", "io_uring_setup": "EPERM", "iopl": "EPERM", "ioperm": "EPERM",
	"swapon": "EPERM", "swapoff": "EPERM", "acct": "EPERM", "syslog": "EPERM", "quotactl": "EPERM",
	"keyctl": "ENOSYS", "add_key": "ENOSYS", "request_key": "ENOSYS",
	"lookup_dcookie": "EPERM", "nfsservctl": "EPERM", "uselib": "EPERM", "_sysctl": "EPERM",
	"umount2_force": "EPERM", "personality_read_implies_exec": "EPERM", "x32_getpid": "ENOSYS",
	// Changing the host's time: the filter (first two) or the kernel (no
	// CAP_SYS_TIME over the host) refuses.
	"clock_settime": "EPERM", "settimeofday": "EPERM", "adjtimex_set": "EPERM", "clock_adjtime_set": "EPERM",
	// Allowed: the filter must not take them away.
	"personality_query": "ok", "getpid": "ok", "adjtimex_read": "ok",
}

func TestEscapeProcessBusybox(t *testing.T) {
	e := newEnv(t)
	probe := buildProbe(t)
	leak := newLeak(t)
	e.createBusybox("b1")
	leak.startWith(e, "b1")
	e.installProbe("b1", probe)
	checkProcessEscapes(t, e, "b1", leak)
	checkSyscallKeys(t, e, "b1")
	checkInitKeyring(t, e, probe)
}

func TestEscapeProcessDebian(t *testing.T) {
	e := newEnv(t)
	probe := buildProbe(t)
	leak := newLeak(t)
	e.must("create", "d1", "--template", "debian")
	leak.startWith(e, "d1")
	waitRunning(t, e, "d1") // seccomp, keyrings and all: systemd boots to "running"
	e.installProbe("d1", probe)
	checkProcessEscapes(t, e, "d1", leak)
	checkSyscallKeys(t, e, "d1")
	if failed := e.must("exec", "d1", "--", "systemctl", "--failed", "--no-legend"); strings.TrimSpace(failed) != "" {
		t.Errorf("failed units:\n%s", failed)
	}
}

// checkProcessEscapes runs the checks that need no configuration change.
func checkProcessEscapes(t *testing.T, e *env, name string, leak *leak) {
	t.Run("descriptors", func(t *testing.T) { leak.check(t, e, name) })
	t.Run("sessions", func(t *testing.T) {
		for _, flag := range []string{"-T", "-t"} {
			out := probeMap(t, e.must("exec", name, flag, "--", "/lodge-probe", "sid"))
			if out["pid"] == "" || out["sid"] != out["pid"] {
				t.Errorf("exec %s: the command is not a session leader: %v", flag, out)
			}
		}
	})
	t.Run("seccomp", func(t *testing.T) {
		for _, user := range []string{"root", "nobody"} {
			status := e.must("exec", name, "--user", user, "--", "/lodge-probe", "status")
			bounding := "CapBnd: " + boundingSet(t)
			for _, want := range []string{"/proc/self/status Seccomp: 2", "/proc/1/status Seccomp: 2",
				"/proc/self/status " + bounding, "/proc/1/status " + bounding} {
				if !strings.Contains(status, want) {
					t.Errorf("as %s: no %q in:\n%s", user, want, status)
				}
			}
			checkProbe(t, e.must("exec", name, "--user", user, "--", "/lodge-probe", "syscalls"), deniedByDefault)
		}
	})
	t.Run("host processes", func(t *testing.T) {
		monitor := e.info(name).MonitorPID
		for _, pid := range []int{monitor, os.Getpid()} {
			if pid == 0 {
				t.Fatalf("no monitor pid for %s", name)
			}
			out := probeMap(t, e.must("exec", name, "--", "/lodge-probe", "hostpid", strconv.Itoa(pid)))
			if out["proc"] == "ok" {
				t.Logf("host pid %d is also a pid in %s; skipped", pid, name)
				continue
			}
			checkProbe(t, e.must("exec", name, "--", "/lodge-probe", "hostpid", strconv.Itoa(pid)), map[string]string{
				"proc": "ENOENT", "kill0": "ESRCH", "kill9": "ESRCH", "pidfd_open": "ESRCH", "ptrace_attach": "ESRCH",
			})
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", monitor)); err != nil {
			t.Errorf("the monitor %d is gone after the attempts: %v", monitor, err)
		}
	})
	t.Run("i386 ABI", func(t *testing.T) {
		r := e.run("exec", name, "--", "/lodge-probe", "int80")
		switch {
		case strings.Contains(r.stdout, "int80_getpid -38"):
			// ENOSYS from the filter's architecture guard.
		case r.code == 128+int(unix.SIGSEGV) || strings.Contains(r.stderr, "SIGSEGV") || r.code == 2 && r.stdout == "":
			testreq.Skip(t, "ia32", "this kernel offers no i386 system calls to 64-bit programs (int 0x80 faults): nothing to filter")
		default:
			t.Errorf("an i386 getpid was answered: %s", r)
		}
	})
	t.Run("keyring", func(t *testing.T) {
		// The default filter hides keyrings altogether ...
		checkProbe(t, e.must("exec", name, "--", "/lodge-probe", "syscalls"), map[string]string{"keyctl": "ENOSYS"})
		// ... and with keyctl allowed, the caller's session keyring is still
		// out of reach: the command has a keyring of its own.
		e.must("config", "set", name, "security.syscalls.allow=keyctl add_key request_key")
		defer e.must("config", "set", name, "security.syscalls.allow=")
		withHostKey(t, func(serial int, desc string) {
			out := e.must("exec", name, "--", "/lodge-probe", "keys", strconv.Itoa(serial), desc)
			checkHostKeyHidden(t, out)
		})
	})
}

// boundingSet is the capability bounding set lodge documents
// (internal/isolation/caps.go), as /proc/PID/status shows it: every capability
// of this kernel but CAP_SYS_MODULE, CAP_SYS_RAWIO, CAP_SYS_TIME,
// CAP_AUDIT_CONTROL, CAP_AUDIT_READ, CAP_AUDIT_WRITE, CAP_MAC_ADMIN and
// CAP_MAC_OVERRIDE.
func boundingSet(t *testing.T) string {
	data, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		t.Fatal(err)
	}
	last, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	set := uint64(1)<<(last+1) - 1
	for _, c := range []int{unix.CAP_SYS_MODULE, unix.CAP_SYS_RAWIO, unix.CAP_SYS_TIME, unix.CAP_AUDIT_CONTROL,
		unix.CAP_AUDIT_READ, unix.CAP_AUDIT_WRITE, unix.CAP_MAC_ADMIN, unix.CAP_MAC_OVERRIDE} {
		set &^= 1 << c
	}
	return fmt.Sprintf("%016x", set)
}

// checkHostKeyHidden checks the probe's "keys" report: it has a session
// keyring, and the host's key can be neither read nor found.
func checkHostKeyHidden(t *testing.T, out string) {
	t.Helper()
	m := probeMap(t, out)
	if m["session_keyring"] != "ok" {
		t.Errorf("no session keyring of its own: %s", out)
	}
	if m["read_host_key"] == "ok" || m["search_host_key"] == "ok" || strings.Contains(out, "proc_keys_shows_host_key") ||
		strings.Contains(out, "payload") {
		t.Errorf("the host's key is reachable:\n%s", out)
	}
}

// checkSyscallKeys: security.syscalls.allow and .deny take effect for lodge
// exec at once.
func checkSyscallKeys(t *testing.T, e *env, name string) {
	t.Run("allow and deny", func(t *testing.T) {
		fifo := "/tmp/lodge-fifo-" + randomHex(4)
		checkProbe(t, e.must("exec", name, "--", "/lodge-probe", "mkfifo", fifo+"a"), map[string]string{"mknodat": "ok"})
		e.must("config", "set", name, "security.syscalls.deny=mknodat mknod")
		e.must("config", "set", name, "security.syscalls.allow=perf_event_open keyctl")
		defer func() {
			e.must("config", "set", name, "security.syscalls.deny=")
			e.must("config", "set", name, "security.syscalls.allow=")
		}()
		checkProbe(t, e.must("exec", name, "--", "/lodge-probe", "mkfifo", fifo+"b"), map[string]string{"mknodat": "EPERM"})
		out := probeMap(t, e.must("exec", name, "--", "/lodge-probe", "syscalls"))
		if out["perf_event_open"] == "EPERM" || out["keyctl"] == "ENOSYS" {
			t.Errorf("allowed calls still denied: perf_event_open %s, keyctl %s", out["perf_event_open"], out["keyctl"])
		}
		if out["bpf"] != "EPERM" || out["add_key"] != "ENOSYS" {
			t.Errorf("the rest of the defaults went: bpf %s, add_key %s", out["bpf"], out["add_key"])
		}
		e.expectFail(2, "did you mean kexec_load?", "config", "set", name, "security.syscalls.deny=kexec_lod")
	})
}

// checkInitKeyring: init (and what it starts) has a session keyring of its
// own too. Busybox's rcS, a child of init with init's keyring, runs the probe
// at boot with keyctl allowed.
func checkInitKeyring(t *testing.T, e *env, probe string) {
	t.Run("init keyring", func(t *testing.T) {
		e.createBusybox("b2", "security.syscalls.allow=keyctl add_key request_key")
		data, err := os.ReadFile(probe)
		if err != nil {
			t.Fatal(err)
		}
		withHostKey(t, func(serial int, desc string) {
			e.editRootfs("b2", func(rootfs string) {
				if err := os.WriteFile(filepath.Join(rootfs, "lodge-probe"), data, 0o755); err != nil {
					t.Fatal(err)
				}
				rcS := filepath.Join(rootfs, "etc/init.d/rcS")
				script, err := os.ReadFile(rcS)
				if err != nil {
					t.Fatal(err)
				}
				script = append(script, fmt.Sprintf("/lodge-probe keys %d %s > /keys-init.tmp 2>&1; mv /keys-init.tmp /keys-init.out\n", serial, desc)...)
				if err := os.WriteFile(rcS, script, 0o755); err != nil {
					t.Fatal(err)
				}
			})
			e.must("start", "b2")
		})
		var out []byte
		waitUntil(t, "the probe's report from rcS", func() bool {
			// Read through init's root: the merged root whatever the storage.
			out, _ = os.ReadFile(filepath.Join("/proc", strconv.Itoa(e.info("b2").PID), "root", "keys-init.out"))
			return len(out) > 0
		})
		checkHostKeyHidden(t, string(out))
	})
}

// withHostKey runs fn on a thread with a new session keyring holding a key
// of the host's (what an operator's login session has), so the lodge
// commands fn runs inherit it. The thread stays locked and ends with the
// test: its credentials are changed for good.
func withHostKey(t *testing.T, fn func(serial int, desc string)) {
	runtime.LockOSThread() // never unlocked: the thread dies with this goroutine
	if _, _, errno := unix.RawSyscall(unix.SYS_KEYCTL, unix.KEYCTL_JOIN_SESSION_KEYRING, 0, 0); errno != 0 {
		t.Fatalf("join a session keyring: %v", errno)
	}
	desc := "lodge-escape-" + randomHex(6)
	payload := "secret-" + randomHex(8)
	serial, err := unix.AddKey("user", desc, []byte(payload), unix.KEY_SPEC_SESSION_KEYRING)
	if err != nil {
		t.Fatalf("add_key: %v", err)
	}
	defer unix.KeyctlInt(unix.KEYCTL_REVOKE, serial, 0, 0, 0)
	// The key is really there for processes of this session.
	if _, err := unix.KeyctlSearch(unix.KEY_SPEC_SESSION_KEYRING, "user", desc, 0); err != nil {
		t.Fatalf("own key not found: %v", err)
	}
	fn(serial, desc)
}

// leak is what a careless caller hands lodge: an open directory and an open
// root-only file, both inheritable.
type leak struct {
	marker string
	dir    *os.File
	secret *os.File
}

func newLeak(t *testing.T) *leak {
	marker := "lodge-leak-" + randomHex(6)
	dir := filepath.Join(t.TempDir(), marker)
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "secret")
	if err := os.WriteFile(path, []byte("host secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l := &leak{marker: marker}
	var err error
	if l.dir, err = os.Open(dir); err != nil {
		t.Fatal(err)
	}
	if l.secret, err = os.Open(path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.dir.Close(); l.secret.Close() })
	return l
}

// run runs lodge with the leaked descriptors as its 3 and 4 (where lodge
// puts descriptors of its own for its children) and 8 and 9 (where nothing of
// lodge's would cover them).
func (l *leak) run(t *testing.T, e *env, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := e.command(ctx, args...)
	cmd.ExtraFiles = []*os.File{l.dir, l.secret, nil, nil, nil, l.dir, l.secret}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("lodge %v: %v\n%s%s", args, err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

func (l *leak) startWith(e *env, name string) { l.run(e.t, e, "start", name) }

// check looks for the leaked descriptors in every process of the container
// (from inside, and from the host for init) and in its monitor.
func (l *leak) check(t *testing.T, e *env, name string) {
	for _, flag := range []string{"-T", "-t"} {
		out := l.run(t, e, "exec", name, flag, "--", "/lodge-probe", "fds", l.marker)
		if strings.Contains(out, "leak ") || !strings.Contains(out, "checked ") {
			t.Errorf("exec %s: descriptors of lodge's caller in the container:\n%s", flag, out)
		}
		var fds []string
		for _, fd := range strings.Split(probeMap(t, out)["self"], ",") {
			num, _, _ := strings.Cut(fd, "=")
			fds = append(fds, num)
		}
		if strings.Join(fds, ",") != "0,1,2" {
			t.Errorf("exec %s: the command starts with descriptors %v, want 0, 1 and 2 only", flag, probeMap(t, out)["self"])
		}
	}
	i := e.info(name)
	for what, pid := range map[string]int{"init": i.PID, "monitor": i.MonitorPID} {
		links, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
		for _, link := range links {
			if target, _ := os.Readlink(link); strings.Contains(target, l.marker) {
				t.Errorf("the container's %s holds %s -> %s", what, link, target)
			}
		}
	}
}

// installProbe copies the probe into the container (through lodge exec, so
// whatever the root filesystem's id shifting, it lands as root's).
func (e *env) installProbe(name, probe string) {
	e.t.Helper()
	f, err := os.Open(probe)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	cmd := e.command(context.Background(), "exec", name, "-T", "--", "sh", "-c", "cat > /lodge-probe && chmod 755 /lodge-probe")
	cmd.Stdin = f
	if out, err := cmd.CombinedOutput(); err != nil {
		e.t.Fatalf("install the probe in %s: %v\n%s", name, err, out)
	}
}

var probeBuild struct {
	sync.Once
	path string
	err  error
}

// buildProbe builds the static probe once per test binary.
func buildProbe(t *testing.T) string {
	probeBuild.Do(func() {
		probeBuild.path = filepath.Join(binDir, "lodge-probe")
		cmd := exec.Command("go", "build", "-o", probeBuild.path, "lodge/tests/probe")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			probeBuild.err = fmt.Errorf("build the probe: %v\n%s", err, out)
		}
	})
	if probeBuild.err != nil {
		t.Fatal(probeBuild.err)
	}
	return probeBuild.path
}

// probeMap parses the probe's "NAME RESULT" lines.
func probeMap(t *testing.T, out string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		line = strings.TrimSpace(line)
		if name, result, ok := strings.Cut(line, " "); ok {
			m[name] = result
		}
	}
	return m
}

// checkProbe compares the probe's answers with want.
func checkProbe(t *testing.T, out string, want map[string]string) {
	t.Helper()
	got := probeMap(t, out)
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: got %q, want %q", name, got[name], w)
		}
	}
}
