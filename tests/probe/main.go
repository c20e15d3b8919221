// The Go runtime must not keep cgroup files open (to size GOMAXPROCS): the
// probe reports its own descriptors.

//go:debug containermaxprocs=0
//go:debug updatemaxprocs=0

// Command probe is the escape suite's hands inside a container
// (tests/escape_process_test.go): a static program that makes the raw system
// calls a tenant would try and prints what the kernel answered, one
// "NAME RESULT" line each, RESULT being "ok" or the errno's name. It never
// decides anything; the test compares.
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: probe syscalls|fds MARKER|sid|status|hostpid PID|keys SERIAL DESC|int80|move-mount TARGET|mkfifo PATH|subvolumes DIR PREFIX|ring")
		os.Exit(2)
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "syscalls":
		syscalls()
	case "fds":
		fds(args[0])
	case "sid":
		sid, _ := unix.Getsid(0)
		fmt.Printf("pid %d\nsid %d\n", os.Getpid(), sid)
	case "status":
		for _, p := range []string{"/proc/self/status", "/proc/1/status"} {
			data, _ := os.ReadFile(p)
			for _, line := range strings.Split(string(data), "\n") {
				if strings.HasPrefix(line, "Seccomp") || strings.HasPrefix(line, "CapBnd") {
					fmt.Printf("%s %s\n", p, strings.Join(strings.Fields(line), " "))
				}
			}
		}
	case "hostpid":
		hostpid(args[0])
	case "keys":
		keys(args[0], args[1])
	case "int80":
		fmt.Printf("int80_getpid %d\n", int64(int80(20))) // i386 getpid
	case "move-mount": // attach the detached mount at descriptor 3 onto args[0]
		if err := unix.MoveMount(3, "", unix.AT_FDCWD, args[0], unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
			fmt.Fprintf(os.Stderr, "move_mount onto %s: %v\n", args[0], err)
			os.Exit(1)
		}
	case "subvolumes": // DIR PREFIX: make btrfs subvolumes and snapshots in DIR
		subvolumes(args[0], args[1])
	case "mkfifo":
		report("mknodat", unix.Mknodat(unix.AT_FDCWD, args[0], unix.S_IFIFO|0o600, 0))
	case "ring": // hold an io_uring instance until killed (the checkpoint preflight's case)
		holdRing()
	default:
		fmt.Fprintln(os.Stderr, "unknown probe", os.Args[1])
		os.Exit(2)
	}
}

// holdRing sets up an io_uring instance, says "ring ok" (or the errno), and
// keeps it open until killed.
func holdRing() {
	var params [120]byte // struct io_uring_params, zeroed
	_, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, 1, uintptr(unsafe.Pointer(&params)), 0)
	if errno != 0 {
		report("ring", errno)
		os.Exit(1)
	}
	report("ring", nil)
	for {
		time.Sleep(time.Hour)
	}
}

func report(name string, err error) {
	if err == nil {
		fmt.Println(name, "ok")
		return
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		fmt.Println(name, unix.ErrnoName(errno))
		return
	}
	fmt.Println(name, err)
}

func raw(nr uintptr, args ...uintptr) error {
	var a [6]uintptr
	copy(a[:], args)
	_, _, errno := unix.Syscall6(nr, a[0], a[1], a[2], a[3], a[4], a[5])
	if errno != 0 {
		return errno
	}
	return nil
}

func str(s string) uintptr {
	p, _ := unix.BytePtrFromString(s)
	return uintptr(unsafe.Pointer(p))
}

// syscalls tries each call the default filter denies, with arguments that
// would change nothing (or fail differently) if the kernel saw them.
func syscalls() {
	none := ^uintptr(0) // -1: an invalid descriptor
	report("kexec_load", raw(unix.SYS_KEXEC_LOAD, 0, 0, 0, 0))
	report("kexec_file_load", raw(unix.SYS_KEXEC_FILE_LOAD, none, none, 0, 0, 0))
	report("init_module", raw(unix.SYS_INIT_MODULE, 0, 0, str("")))
	report("finit_module", raw(unix.SYS_FINIT_MODULE, none, str(""), 0))
	report("delete_module", raw(unix.SYS_DELETE_MODULE, str("lodge_no_such_module"), 0))
	report("open_by_handle_at", raw(unix.SYS_OPEN_BY_HANDLE_AT, none, 0, 0))
	report("bpf", raw(unix.SYS_BPF, 0, 0, 0))
	report("perf_event_open", raw(unix.SYS_PERF_EVENT_OPEN, 0, 0, none, none, 0))
	report("userfaultfd", raw(unix.SYS_USERFAULTFD, 0))
	report("io_uring_setup", raw(unix.SYS_IO_URING_SETUP, 1, 0))
	report("iopl", raw(unix.SYS_IOPL, 3))
	report("ioperm", raw(unix.SYS_IOPERM, 0x80, 1, 1))
	report("swapon", raw(unix.SYS_SWAPON, str("/lodge-no-such-swap"), 0))
	report("swapoff", raw(unix.SYS_SWAPOFF, str("/lodge-no-such-swap")))
	report("acct", raw(unix.SYS_ACCT, 0))
	report("syslog", raw(unix.SYS_SYSLOG, 10, 0, 0)) // SYSLOG_ACTION_SIZE_BUFFER
	report("quotactl", raw(unix.SYS_QUOTACTL, 0, 0, 0, 0))
	report("keyctl", raw(unix.SYS_KEYCTL, unix.KEYCTL_GET_KEYRING_ID, uintptr(0xfffffffd), 0)) // the session keyring
	report("add_key", raw(unix.SYS_ADD_KEY, str("user"), str("lodge-probe"), str("x"), 1, uintptr(0xfffffffd)))
	report("request_key", raw(unix.SYS_REQUEST_KEY, str("user"), str("lodge-probe"), 0, 0))
	report("lookup_dcookie", raw(unix.SYS_LOOKUP_DCOOKIE, 0, 0, 0))
	report("nfsservctl", raw(unix.SYS_NFSSERVCTL, 0, 0, 0))
	report("uselib", raw(unix.SYS_USELIB, 0))
	report("_sysctl", raw(unix.SYS__SYSCTL, 0))
	report("umount2_force", raw(unix.SYS_UMOUNT2, str("/lodge-no-such-mount"), unix.MNT_FORCE))
	report("personality_read_implies_exec", raw(unix.SYS_PERSONALITY, 0x0400000))
	report("x32_getpid", raw(0x40000000|unix.SYS_GETPID))
	// Changing the host's time: each would set it to what it is.
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_REALTIME, &ts)
	report("clock_settime", raw(unix.SYS_CLOCK_SETTIME, unix.CLOCK_REALTIME, uintptr(unsafe.Pointer(&ts))))
	tv := unix.NsecToTimeval(time.Now().UnixNano())
	report("settimeofday", raw(unix.SYS_SETTIMEOFDAY, uintptr(unsafe.Pointer(&tv)), 0))
	var tx unix.Timex
	unix.Adjtimex(&tx) // read the frequency, then set it to the same value
	tx.Modes = unix.ADJ_FREQUENCY
	_, err := unix.Adjtimex(&tx)
	report("adjtimex_set", err)
	tx = unix.Timex{Modes: unix.ADJ_FREQUENCY, Freq: tx.Freq}
	report("clock_adjtime_set", raw(unix.SYS_CLOCK_ADJTIME, unix.CLOCK_REALTIME, uintptr(unsafe.Pointer(&tx))))
	// Allowed: the filter must not take these away.
	report("personality_query", raw(unix.SYS_PERSONALITY, 0xffffffff))
	report("getpid", raw(unix.SYS_GETPID))
	_, err = unix.Adjtimex(&unix.Timex{})
	report("adjtimex_read", err)
}

// fds lists its own descriptors (before it opens any), then those of every
// process it can see that point at a path containing marker.
func fds(marker string) {
	var own []string
	for fd := 0; fd < 1024; fd++ {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil {
			target, _ := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
			own = append(own, fmt.Sprintf("%d=%s", fd, target))
		}
	}
	fmt.Println("self", strings.Join(own, ","))
	dirs, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	seen := 0
	for _, d := range dirs {
		target, err := os.Readlink(d)
		if err != nil {
			continue
		}
		seen++
		if strings.Contains(target, marker) {
			fmt.Println("leak", d, target)
		}
	}
	fmt.Println("checked", seen)
}

// hostpid tries to reach a process of the host by its host pid.
func hostpid(arg string) {
	pid, _ := strconv.Atoi(arg)
	_, err := os.Stat("/proc/" + arg)
	report("proc", err)
	if err == nil {
		return // the number is a process of the container's own: leave it alone
	}
	report("kill0", unix.Kill(pid, 0))
	report("kill9", unix.Kill(pid, unix.SIGKILL))
	_, err = unix.PidfdOpen(pid, 0)
	report("pidfd_open", err)
	report("ptrace_attach", unix.PtraceAttach(pid))
}

// keys tries to find and read a key of the host's session keyring.
func keys(serialArg, desc string) {
	serial, _ := strconv.Atoi(serialArg)
	id, err := unix.KeyctlInt(unix.KEYCTL_GET_KEYRING_ID, unix.KEY_SPEC_SESSION_KEYRING, 0, 0, 0)
	report("session_keyring", err)
	fmt.Println("session_keyring_id", id)
	buf := make([]byte, 256)
	n, err := unix.KeyctlBuffer(unix.KEYCTL_READ, serial, buf, 0)
	report("read_host_key", err)
	if err == nil {
		fmt.Printf("payload %q\n", buf[:n])
	}
	_, err = unix.KeyctlSearch(unix.KEY_SPEC_SESSION_KEYRING, "user", desc, 0)
	report("search_host_key", err)
	data, err := os.ReadFile("/proc/keys")
	report("proc_keys", err)
	if strings.Contains(string(data), desc) {
		fmt.Println("proc_keys_shows_host_key")
	}
}
