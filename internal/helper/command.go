// Package helper starts lodge's C helper, lodge-helper (cmd/lodge-helper), which
// works before any Go runtime starts: it runs commands inside a running
// container's namespaces (a Go process cannot join user or mount namespaces),
// and it starts a container's first process in the container's v1 cgroups
// without the cost of a process migration.
package helper

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// AllNamespaces are the namespaces a command joins: every one a container has.
const AllNamespaces = unix.CLONE_NEWUSER | unix.CLONE_NEWNS | unix.CLONE_NEWPID |
	unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWNET | unix.CLONE_NEWCGROUP |
	unix.CLONE_NEWTIME

// Spec says what to run in a container and as whom.
type Spec struct {
	Init        *os.File // pidfd of the container's init; its namespaces are joined
	Namespaces  int      // namespaces to join (AllNamespaces)
	CgroupTasks []string // v1 "tasks" files of the cgroups to join (see cgroup.Placement)
	Cgroup2     string   // cgroup2 directory to create the command in; "" if none
	UID, GID    uint32   // credentials inside the container
	Groups      []uint32 // supplementary groups inside the container
	DropCaps    string   // capabilities to drop from the bounding set (comma-separated numbers)
	Cwd         string   // working directory inside the container
	CwdIsHome   bool     // Cwd is just the user's home: fall back to / if it is missing
	Env         []string // the command's whole environment
	Args        []string // the command and its arguments
	PtySocket   *os.File // if set, a pty is made in the container and its master sent here
	PtyRows     uint16   // the pty's size, set before the command runs (0: the kernel's default)
	PtyCols     uint16
	Seccomp     string // the seccomp filter to load, hex (seccomp.Program.Hex)
}

// Fixed descriptor numbers in the helper: ExtraFiles start at 3.
const (
	pidfdFD     = 3
	ptySocketFD = 4
)

// HelperName is the helper's file name; it is looked up next to the lodge binary.
const HelperName = "lodge-helper"

// FindHelper returns the path of lodge-helper next to the lodge binary at self,
// or on $PATH.
func FindHelper(self string) (string, error) { return FindBeside(self, HelperName) }

// FindBeside returns the path of lodge's companion binary name (lodge-helper,
// lodge-lxcfs) next to the lodge binary at self, or on $PATH.
func FindBeside(self, name string) (string, error) {
	path := filepath.Join(filepath.Dir(self), name)
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if path, err := exec.LookPath(name); err == nil {
		return path, nil
	}
	return "", fmt.Errorf("%s is missing: lodge needs it next to %s or on $PATH (make build builds it)", name, self)
}

// Process is a started helper. Its methods may be called from several
// goroutines: Signal and Kill never reach a recycled pid, since Wait reaps the
// helper only under the same lock.
type Process struct {
	pid    int
	mu     sync.Mutex
	reaped bool
	killed bool // by Kill
}

// Start starts the helper that runs spec.Args in the container, with stdio as
// the command's stdin, stdout and stderr. The helper is created directly in the
// container's cgroup2 cgroup (clone3 CLONE_INTO_CGROUP) and joins the v1 ones
// itself; see cmd/lodge-helper/exec.c. It uses syscall.ForkExec rather than os/exec, whose
// first start in a process forks an extra child to probe for pidfd support.
func Start(helper string, spec Spec, stdio [3]*os.File) (*Process, error) {
	files := []uintptr{stdio[0].Fd(), stdio[1].Fd(), stdio[2].Fd(), spec.Init.Fd()}
	if spec.PtySocket != nil {
		files = append(files, spec.PtySocket.Fd())
	}
	attr := &syscall.ProcAttr{
		Env:   append(append([]string{}, spec.Env...), helperEnv(spec)...),
		Files: files,
		Sys:   &syscall.SysProcAttr{},
	}
	if spec.Cgroup2 != "" {
		dir, err := os.Open(spec.Cgroup2)
		if err != nil {
			return nil, fmt.Errorf("open the container's cgroup: %w", err)
		}
		defer dir.Close()
		attr.Sys.UseCgroupFD = true
		attr.Sys.CgroupFD = int(dir.Fd())
	}
	argv := append([]string{"lodge-exec"}, spec.Args...)
	pid, err := syscall.ForkExec(helper, argv, attr)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", helper, err)
	}
	return &Process{pid: pid}, nil
}

// Signal sends sig to the helper, which passes SIGINT, SIGQUIT, SIGTERM,
// SIGHUP, SIGUSR1 and SIGUSR2 on to the command (cmd/lodge-helper/exec.c).
// Once the helper is reaped it returns os.ErrProcessDone.
func (p *Process) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reaped {
		return os.ErrProcessDone
	}
	return syscall.Kill(p.pid, sig)
}

// Kill ends the command and the helper at once. The command runs in a session
// of its own in the container's pid namespace, so killing the helper alone
// would leave it running: the helper is stopped first, so that it cannot fork
// the command between the look for its children and its death, then its
// children are killed, then it is. The command's own children live on, as
// with any SIGKILL of a process.
func (p *Process) Kill() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reaped {
		return os.ErrProcessDone
	}
	if err := syscall.Kill(p.pid, syscall.SIGSTOP); err != nil {
		return fmt.Errorf("stop helper %d: %w", p.pid, err)
	}
	var info unix.Siginfo
	for { // stopped, or dead already: either way it forks no more
		err := unix.Waitid(unix.P_PID, p.pid, &info, unix.WSTOPPED|unix.WEXITED|unix.WNOWAIT, nil)
		if err == nil && info.Code != cldStopped {
			return os.ErrProcessDone // it exited by itself, the command too
		}
		if err != unix.EINTR {
			break
		}
	}
	for _, child := range p.children() {
		syscall.Kill(child, syscall.SIGKILL)
	}
	p.killed = true
	return syscall.Kill(p.pid, syscall.SIGKILL)
}

// Killed reports whether Kill ended the helper before it exited by itself.
func (p *Process) Killed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.killed
}

// cldStopped is siginfo's si_code for a stopped child (CLD_STOPPED in
// <asm-generic/siginfo.h>; golang.org/x/sys/unix lacks it).
const cldStopped = 5

// children lists the helper's child processes (the command, once forked).
// They cannot be reaped and their pids reused meanwhile: the helper, their
// only waiter, is stopped.
func (p *Process) children() []int {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", p.pid, p.pid))
	var pids []int
	for _, field := range strings.Fields(string(data)) {
		if pid, err := strconv.Atoi(field); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// Wait waits for the helper and returns the command's exit status: its exit
// code, or 128+N when it was killed by signal N.
func (p *Process) Wait() (int, error) {
	// Wait for the exit without reaping, then reap under the lock that
	// Signal and Kill take, so that they never signal a reused pid.
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, p.pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err == nil {
			break
		}
		if err != unix.EINTR {
			return 0, fmt.Errorf("wait for %d: %w", p.pid, err)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var ws syscall.WaitStatus
	for {
		_, err := syscall.Wait4(p.pid, &ws, 0, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("wait for %d: %w", p.pid, err)
		}
		break
	}
	p.reaped = true
	if ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	return ws.ExitStatus(), nil
}

func helperEnv(spec Spec) []string {
	env := []string{
		"_LODGE_NSEXEC=1",
		"_LODGE_NSEXEC_PIDFD=" + strconv.Itoa(pidfdFD),
		"_LODGE_NSEXEC_NS=" + strconv.Itoa(spec.Namespaces),
		"_LODGE_TASKS=" + strings.Join(spec.CgroupTasks, "\n"),
		"_LODGE_NSEXEC_UID=" + strconv.FormatUint(uint64(spec.UID), 10),
		"_LODGE_NSEXEC_GID=" + strconv.FormatUint(uint64(spec.GID), 10),
		"_LODGE_NSEXEC_GROUPS=" + joinIDs(spec.Groups),
		"_LODGE_NSEXEC_CWD=" + spec.Cwd,
		"_LODGE_NSEXEC_DROP_CAPS=" + spec.DropCaps,
		"_LODGE_NSEXEC_SECCOMP=" + spec.Seccomp,
	}
	if spec.CwdIsHome {
		env = append(env, "_LODGE_NSEXEC_CWD_SOFT=1")
	}
	if spec.PtySocket != nil {
		env = append(env, "_LODGE_NSEXEC_PTY="+strconv.Itoa(ptySocketFD))
		if spec.PtyRows > 0 && spec.PtyCols > 0 {
			env = append(env, "_LODGE_NSEXEC_PTY_ROWS="+strconv.Itoa(int(spec.PtyRows)),
				"_LODGE_NSEXEC_PTY_COLS="+strconv.Itoa(int(spec.PtyCols)))
		}
	}
	return env
}

func joinIDs(ids []uint32) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.FormatUint(uint64(id), 10)
	}
	return strings.Join(parts, ",")
}

// Exit statuses reserved by the helper, as documented in cmd/lodge-helper/exec.c.
const (
	ExitHelperFailed = 125
	ExitCannotRun    = 126
	ExitNotFound     = 127
)

// InitStub returns the environment that makes the helper join the v1 cgroups
// listed in tasks and then execute the binary open at descriptor exeFD (with
// the helper's own argv): how the monitor starts a container's first process.
func InitStub(exeFD int, tasks []string) []string {
	return []string{"_LODGE_INITSTUB=" + strconv.Itoa(exeFD), "_LODGE_TASKS=" + strings.Join(tasks, "\n")}
}

// Attach mounts host paths over paths inside the running container whose init
// is open as pidfd: mounts are [source on the host, target inside] pairs (see
// cmd/lodge-helper/attach.c).
func Attach(helper string, pidfd *os.File, mounts [][2]string) error {
	lines := make([]string, len(mounts))
	for i, m := range mounts {
		lines[i] = m[0] + "\t" + m[1]
	}
	cmd := exec.Command(helper)
	cmd.Args[0] = "lodge-attach"
	cmd.Env = []string{"_LODGE_ATTACH=1", "_LODGE_ATTACH_PIDFD=3", "_LODGE_ATTACH_MOUNTS=" + strings.Join(lines, "\n")}
	cmd.ExtraFiles = []*os.File{pidfd}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}
