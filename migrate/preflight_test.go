package migrate

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"lodge/internal/testreq"
)

// holdEnv makes the test binary a helper process: "plain" just waits,
// "io_uring" first sets up an io_uring instance and keeps it open. It says
// "ready" on stdout and waits for stdin to close.
const holdEnv = "LODGE_MIGRATE_TEST_HOLD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(holdEnv); mode != "" {
		os.Exit(hold(mode))
	}
	if v := os.Getenv(fakeCRIUEnv); v != "" && len(os.Args) == 3 && os.Args[1] == "swrk" {
		os.Exit(fakeCRIU(v))
	}
	os.Exit(m.Run())
}

func hold(mode string) int {
	if mode == "io_uring" {
		var params [120]byte // struct io_uring_params, zeroed
		fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, 1, uintptr(unsafe.Pointer(&params)), 0)
		if errno != 0 {
			fmt.Println("io_uring_setup:", errno)
			return 1
		}
		fmt.Println("ready", fd)
	} else if mode == "oddsocket" {
		// A socket CRIU cannot dump: vsock, else MPTCP, whichever this
		// kernel has.
		fd, err := unix.Socket(unix.AF_VSOCK, unix.SOCK_STREAM, 0)
		if err != nil {
			fd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM, unix.IPPROTO_MPTCP)
		}
		if err != nil {
			fmt.Println("no vsock or MPTCP socket:", err)
			return 1
		}
		fmt.Println("ready", fd)
	} else {
		// A plain process with the sockets every daemon has: CRIU dumps them.
		for _, s := range [][2]int{{unix.AF_UNIX, unix.SOCK_STREAM}, {unix.AF_INET, unix.SOCK_DGRAM}, {unix.AF_INET6, unix.SOCK_STREAM}, {unix.AF_NETLINK, unix.SOCK_RAW}} {
			if _, err := unix.Socket(s[0], s[1], 0); err != nil {
				fmt.Println("socket:", err)
				return 1
			}
		}
		fmt.Println("ready")
	}
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	return 0
}

// startHolderIn is startHolder with a SysProcAttr of the caller's.
func startHolderIn(t *testing.T, mode string, attr *syscall.SysProcAttr) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), holdEnv+"="+mode)
	cmd.SysProcAttr = attr
	return runHolder(t, cmd, mode)
}

// startHolder starts the test binary as a helper in mode, with extra clone
// flags, and returns its pid once it is ready; it ends with the test. The
// helper leads its own session, as a container's init does: the test's own
// session leader may be outside every namespace the test can see (a CI
// runner in a pid namespace of its own), which the preflight would name.
func startHolder(t *testing.T, mode string, cloneflags uintptr) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), holdEnv+"="+mode)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: cloneflags, Setsid: true}
	return runHolder(t, cmd, mode)
}

func runHolder(t *testing.T, cmd *exec.Cmd, mode string) int {
	t.Helper()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ready") {
		if strings.Contains(line, "io_uring_setup") || strings.Contains(line, "no vsock or MPTCP") {
			t.Skipf("SKIPPED: this kernel refuses it (%s)", strings.TrimSpace(line))
		}
		t.Fatalf("helper %s: %q, %v", mode, line, err)
	}
	return cmd.Process.Pid
}

// needRoot skips the real tests without root or under -short.
func needRoot(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test (-short)")
	}
	if os.Geteuid() != 0 {
		testreq.Skip(t, "root", "reading other processes' fds in /proc needs root")
	}
}

func TestPreflightNamesIOUring(t *testing.T) {
	needRoot(t)
	plain := startHolder(t, "plain", 0)
	ring := startHolder(t, "io_uring", 0)
	bs, err := Preflight(plain, []int{plain, ring}, nil)
	if err != nil {
		t.Fatal(err)
	}
	comm := readComm("/proc", ring)
	if len(bs) != 1 || bs[0].PID != ring || bs[0].Comm != comm || !strings.HasPrefix(bs[0].What, "io_uring instance (fd ") {
		t.Fatalf("Preflight = %v; want one io_uring blocker for %d (%s)", bs, ring, comm)
	}
	t.Logf("blocker: %s", bs[0])
}

func TestPreflightNamesUndumpableSocket(t *testing.T) {
	needRoot(t)
	plain := startHolder(t, "plain", 0)
	odd := startHolder(t, "oddsocket", 0)
	bs, err := Preflight(plain, []int{plain, odd}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 1 || bs[0].PID != odd || !(strings.HasPrefix(bs[0].What, "AF_VSOCK socket (fd ") || strings.HasPrefix(bs[0].What, "MPTCP socket (fd ")) {
		t.Fatalf("Preflight = %v; want one vsock or MPTCP socket blocker for %d", bs, odd)
	}
	t.Logf("blocker: %s", bs[0])
}

func TestPreflightPlainProcessPasses(t *testing.T) {
	needRoot(t)
	plain := startHolder(t, "plain", 0)
	bs, err := Preflight(plain, []int{plain}, nil)
	if err != nil || len(bs) != 0 {
		t.Fatalf("Preflight of a plain process = %v, %v; want nothing", bs, err)
	}
}

func TestPreflightNestedNamespaces(t *testing.T) {
	needRoot(t)
	init := startHolder(t, "plain", 0)
	uts := startHolder(t, "plain", syscall.CLONE_NEWUTS)
	mnt := startHolder(t, "plain", syscall.CLONE_NEWNS|syscall.CLONE_NEWNET) // CRIU dumps these nested
	gone := 1 << 30                                                          // no such process: skipped
	bs, err := Preflight(init, []int{init, uts, mnt, gone}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 1 || bs[0].PID != uts || bs[0].What != "nested uts namespace" || !strings.Contains(bs[0].Fix, "ProtectHostname=no") {
		t.Fatalf("Preflight = %v; want one nested uts blocker for %d", bs, uts)
	}
}

// TestPreflightSessionOutside: a process that entered the container's pid
// namespace keeping its caller's session (as lodge exec once did) is named.
func TestPreflightSessionOutside(t *testing.T) {
	needRoot(t)
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		testreq.Skip(t, "nsenter", "nsenter (util-linux) is missing")
	}
	init := startHolderIn(t, "plain", &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID, Setsid: true})
	// nsenter forks after entering a pid namespace: the child is in it, in
	// the test's session, whose leader is outside.
	cmd := exec.Command(nsenter, "-t", fmt.Sprint(init), "-p", "--", os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), holdEnv+"=plain")
	runHolder(t, cmd, "plain")
	kids, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid))
	var inner int
	if _, err2 := fmt.Sscan(string(kids), &inner); err != nil || err2 != nil {
		t.Fatalf("nsenter's child: %q, %v, %v", kids, err, err2)
	}
	bs, err := Preflight(init, []int{init, inner}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 1 || bs[0].PID != inner || bs[0].What != "session leader outside the container (a lodge exec session)" {
		t.Fatalf("Preflight = %v; want one session blocker for %d", bs, inner)
	}
}

func TestPreflightTooOldCRIU(t *testing.T) {
	needRoot(t)
	init := startHolder(t, "plain", 0)
	bs, err := Preflight(init, []int{init}, &CRIU{Path: "/usr/sbin/criu", Version: 31701})
	if err != nil || len(bs) != 1 || bs[0].String() != "criu 3.17.1 at /usr/sbin/criu is older than 4.2; run make deps, or set criu.path in the host config" {
		t.Fatalf("Preflight = %q, %v", bs, err)
	}
}

func TestClassifyFD(t *testing.T) {
	for target, want := range map[string]string{
		"anon_inode:[io_uring]":    "io_uring instance",
		"anon_inode:[userfaultfd]": "userfaultfd",
		"anon_inode:[perf_event]":  "perf_event descriptor",
		"anon_inode:bpf-prog":      "anonymous inode bpf-prog",
		"/dev/net/tun":             "tun/tap device",
		"/dev/fuse":                "FUSE device (a FUSE file system's server)",
		"/dev/kvm":                 "virtualization device /dev/kvm",
		"anon_inode:[eventfd]":     "",
		"anon_inode:[eventpoll]":   "",
		"anon_inode:inotify":       "",
		"anon_inode:[pidfd]":       "",
		"pidfd:[1234]":             "",
		"anon_inode:[timerfd]":     "",
		"anon_inode:[signalfd]":    "",
		"socket:[123]":             "",
		"/dev/null":                "",
		"pipe:[99]":                "",
	} {
		what, _, bad := classifyFD(target)
		if what != want || bad != (want != "") {
			t.Errorf("classifyFD(%q) = %q, %v; want %q", target, what, bad, want)
		}
	}
}

func TestSocketInode(t *testing.T) {
	for target, want := range map[string]uint64{"socket:[18305]": 18305, "socket:[x]": 0, "pipe:[1]": 0, "socket:[12": 0} {
		if got, ok := socketInode(target); got != want || ok != (want != 0) {
			t.Errorf("socketInode(%q) = %d, %v", target, got, ok)
		}
	}
}

const netlinkText = `sk               Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode
ffff8d0c8a4b3000 0   1          00000551 0        0        0     2        0        18305
ffff8d0c8a4b5800 15  0          00000001 0        0        0     2        0        18306
ffff8d0c8a4b1000 9   812        00000000 2304     0        0     2        0        20001
`

func TestParseNetlink(t *testing.T) {
	got, err := parseNetlink(strings.NewReader(netlinkText))
	if err != nil {
		t.Fatal(err)
	}
	want := map[uint64]netlinkSock{
		18305: {protocol: 0, groups: 0x551},
		18306: {protocol: 15, groups: 1},
		20001: {protocol: 9, rmem: 2304},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("parseNetlink = %+v\nwant %+v", got, want)
	}
	if _, err := parseNetlink(strings.NewReader("hdr\nffff x 1 0 0 0 0 0 0 1\n")); err == nil {
		t.Error("parseNetlink accepted a protocol that is no number")
	}
}

func TestClassifySocket(t *testing.T) {
	nl, _ := parseNetlink(strings.NewReader(netlinkText))
	tables := &netTables{netlink: nl}
	for _, tt := range []struct {
		proto string
		ino   uint64
		want  string
	}{
		{"TCP", 1, ""},
		{"UDPv6", 2, ""},
		{"UNIX-STREAM", 3, ""},
		{"PACKET", 4, ""},
		{"PING", 5, ""},
		{"NETLINK", 18305, ""},
		{"NETLINK", 20001, "netlink audit socket with 2304 bytes of unread messages"},
		{"NETLINK", 999, ""}, // not in the table (another namespace's): CRIU will tell
		{"AF_VSOCK", 6, "AF_VSOCK socket"},
		{"SCTP", 7, "SCTP socket"},
	} {
		what, _, bad := classifySocket(tt.proto, tt.ino, tables)
		if what != tt.want || bad != (tt.want != "") {
			t.Errorf("classifySocket(%s, %d) = %q, %v; want %q", tt.proto, tt.ino, what, bad, tt.want)
		}
	}
}

func TestSessionOutside(t *testing.T) {
	for status, want := range map[string][2]bool{
		"Name:\tsh\nNSsid:\t4242\t0\n":  {true, true},
		"Name:\tsh\nNSsid:\t4242\t1\n":  {false, true},
		"Name:\tinit\nNSsid:\t4242\n":   {false, true},
		"Name:\told kernel\nPid:\t1\n":  {false, false},
		"NSsid:\t100\t7\t0\nNSpgid:\t1": {true, true},
	} {
		outside, ok := sessionOutside(status)
		if [2]bool{outside, ok} != want {
			t.Errorf("sessionOutside(%q) = %v, %v; want %v", status, outside, ok, want)
		}
	}
}

func TestFuseMounts(t *testing.T) {
	text := `22 1 0:21 / / rw,relatime - ext4 /dev/sda1 rw
30 22 0:40 / /proc/meminfo rw,nosuid - fuse.lodge-lxcfs lodge-lxcfs rw,user_id=0
31 22 0:41 / /mnt/my\040files rw - fuse.sshfs host:/x rw
32 22 0:42 / /media/disk rw shared:5 - fuseblk /dev/sdb1 rw
33 22 0:43 / /m rw - fuse none rw
`
	want := []fuseMount{{"/mnt/my files", "fuse.sshfs"}, {"/media/disk", "fuseblk"}, {"/m", "fuse"}}
	if got := fuseMounts(text); !reflect.DeepEqual(got, want) {
		t.Fatalf("fuseMounts = %+v\nwant %+v", got, want)
	}
}

func TestBlockerString(t *testing.T) {
	b := Blocker{PID: 42, Comm: "worker", What: "io_uring instance (fd 5)", Fix: "stop it"}
	if got := b.String(); got != "42 (worker): io_uring instance (fd 5); stop it" {
		t.Errorf("String() = %q", got)
	}
}

// startHolderHolding starts a plain helper in a mount namespace of its own
// (a container's, whose mounts are not the host's) with f as its fd 3, and
// returns its pid.
func startHolderHolding(t *testing.T, f *os.File) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), holdEnv+"=plain")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS, Setsid: true}
	cmd.ExtraFiles = []*os.File{f}
	return runHolder(t, cmd, "plain")
}

// TestPreflightNamesHostFile: a process holding a file of a mount that is in
// none of the container's mount namespaces (passed in from the host, as a
// lodge exec's output redirected to a host file is) is named; CRIU would
// fail with "Can't lookup mount".
func TestPreflightNamesHostFile(t *testing.T) {
	needRoot(t)
	hostFile, err := os.CreateTemp(t.TempDir(), "host-output")
	if err != nil {
		t.Fatal(err)
	}
	defer hostFile.Close()
	pid := startHolderHolding(t, hostFile)
	bs, err := Preflight(pid, []int{pid}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// os/exec also opened the host's /dev/null for the helper's stderr (fd 2
	// and a copy): host files too, and named too.
	found := false
	for _, b := range bs {
		if b.PID != pid || !strings.HasPrefix(b.What, "file of the host ") {
			t.Errorf("unexpected blocker %s", b)
		}
		if b.What == "file of the host "+hostFile.Name()+" (fd 3)" {
			found = true
			t.Logf("blocker: %s", b)
		}
	}
	if !found {
		t.Fatalf("Preflight = %v; want a host file blocker for %d, fd 3", bs, pid)
	}
}

// A process on its way out has dropped its namespaces (their links are
// gone) while it is still in /proc: it is skipped, not reported nested.
func TestPreflightSkipsExitingProcess(t *testing.T) {
	proc := t.TempDir()
	for _, pid := range []string{"1", "2"} {
		if err := os.MkdirAll(filepath.Join(proc, pid, "ns"), 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(proc, pid, "comm"), []byte("sleep\n"), 0o644)
		os.WriteFile(filepath.Join(proc, pid, "status"), []byte("Name:\tsleep\n"), 0o644)
		os.Mkdir(filepath.Join(proc, pid, "fd"), 0o755)
	}
	for _, t0 := range nsTypes {
		os.Symlink(t0.name+":[4026531840]", filepath.Join(proc, "1", "ns", t0.name))
	}
	os.WriteFile(filepath.Join(proc, "1", "mountinfo"), nil, 0o644)
	bs, err := preflight(proc, 1, []int{2}, nil)
	if err != nil || len(bs) != 0 {
		t.Fatalf("preflight of an exiting process: %v, %v", bs, err)
	}
}

// TestPreflightPassesMemfd: a memfd lives on an internal mount that no
// mountinfo lists; CRIU dumps it, and the preflight must not call it a file
// of the host.
func TestPreflightPassesMemfd(t *testing.T) {
	needRoot(t)
	fd, err := unix.MemfdCreate("preflight-test", unix.MFD_CLOEXEC)
	if err != nil {
		testreq.Skip(t, "memfd", fmt.Sprintf("memfd_create: %v", err))
	}
	memfd := os.NewFile(uintptr(fd), "memfd")
	defer memfd.Close()
	pid := startHolderHolding(t, memfd)
	bs, err := Preflight(pid, []int{pid}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		if strings.Contains(b.What, "memfd") {
			t.Errorf("a memfd is named: %s", b)
		}
	}
}

// TestPreflightNamesHostTerminal: a pty of the host's (a lodge exec's
// terminal, left to a process) is named like any host file; only the
// container's console is exempt.
func TestPreflightNamesHostTerminal(t *testing.T) {
	needRoot(t)
	mfd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		testreq.Skip(t, "pty", fmt.Sprintf("/dev/ptmx: %v", err))
	}
	master := os.NewFile(uintptr(mfd), "ptmx")
	defer master.Close()
	if err := unix.IoctlSetPointerInt(mfd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	sfd, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(mfd), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)
	if errno != 0 {
		t.Fatal(errno)
	}
	slave := os.NewFile(sfd, "pts")
	defer slave.Close()
	pid := startHolderHolding(t, slave)
	bs, err := Preflight(pid, []int{pid}, nil)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, b := range bs {
		found = found || (strings.HasPrefix(b.What, "file of the host ") && strings.HasSuffix(b.What, "(fd 3)"))
	}
	if !found {
		t.Fatalf("Preflight = %v; want the host pty at fd 3 named", bs)
	}
}
