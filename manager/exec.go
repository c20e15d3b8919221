package manager

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"lodge/config"
	"lodge/internal/cgroup"
	"lodge/internal/helper"
	"lodge/internal/isolation"
	"lodge/internal/seccomp"
	"lodge/internal/store"
)

// WindowSize is a terminal's size in character cells.
type WindowSize struct{ Rows, Cols uint16 }

// ExecOptions says what to run in a container and how. Exec uses only the
// streams and channels given here: it never changes the process's signal
// handling, reads its standard input or touches a terminal of the caller, so
// that a server can run many commands at once from goroutines. (The lodge
// CLI does the terminal and signal handling in cmd/lodge.)
type ExecOptions struct {
	Args []string
	User string   // NAME, UID, NAME:GROUP or UID:GID inside the container; "" is root
	Env  []string // KEY=VALUE entries added to the default environment
	Cwd  string   // "" is the user's home directory

	// TTY runs the command on a pty made in the container, of size Size
	// (zero: the kernel's default) and with TERM=Term ("": xterm). Stdin is
	// then its keyboard and Stdout its screen; Stderr gets only the errors
	// of lodge's helper from before the command runs.
	TTY  bool
	Size WindowSize
	Term string

	// The command's streams. A nil Stdin reads as empty, a nil Stdout or
	// Stderr discards. An *os.File is handed to the command as is; any other
	// reader or writer is copied through a pipe, and Exec returns only once
	// the copy of the output is complete (all of it, also from processes the
	// command left behind, unless ctx ends). Exec closes none of them; a copy
	// of Stdin blocked in Read ends when that Read returns.
	Stdin          io.Reader
	Stdout, Stderr io.Writer

	// Resize carries new sizes for the pty (TTY only). Signals carries
	// signals for the command: SIGINT, SIGQUIT, SIGTERM, SIGHUP, SIGUSR1 and
	// SIGUSR2 reach it, SIGKILL kills it (as cancelling ctx does), others are
	// dropped. Either may be nil; neither needs closing.
	Resize  <-chan WindowSize
	Signals <-chan os.Signal
}

// Exec runs a command in all of a running container's namespaces and in its
// init's cgroup, and returns the command's exit status (128+N for signal N).
// If ctx ends first, the command is killed and the error is ctx's.
func (m *Manager) Exec(ctx context.Context, name string, opts ExecOptions) (int, error) {
	run, err := m.StartExec(ctx, name, opts)
	if err != nil {
		return 0, err
	}
	return run.Wait()
}

// StartExec starts a command as Exec does and returns without waiting for it:
// the caller knows the command runs (and, with a pty, that the pty is
// there) before it waits. ctx stays in force until Wait returns.
func (m *Manager) StartExec(ctx context.Context, name string, opts ExecOptions) (*Execution, error) {
	if len(opts.Args) == 0 {
		return nil, invalid(errors.New("no command given; usage: lodge exec NAME -- COMMAND [ARG...]"))
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("exec in %s: %w", name, err)
	}
	helperPath, spec, err := m.execSpec(name, opts)
	if err != nil {
		return nil, err
	}
	defer spec.Init.Close()
	if opts.TTY {
		return startPty(ctx, helperPath, spec, opts)
	}
	return startPlain(ctx, helperPath, spec, opts)
}

// execSpec gathers what the helper needs to run opts.Args in container name.
// The caller closes spec.Init.
func (m *Manager) execSpec(name string, opts ExecOptions) (string, helper.Spec, error) {
	st, err := m.runningInit(name)
	if err != nil {
		return "", helper.Spec{}, err
	}
	if isFrozen(st) {
		return "", helper.Spec{}, frozenRefusal(name, "a command run in it would freeze as it starts")
	}
	// Read through init's root: the merged root whatever the storage backend.
	user, err := lookupUser(filepath.Join("/proc", strconv.Itoa(st.Init.PID), "root"), opts.User)
	if err != nil {
		return "", helper.Spec{}, invalid(err)
	}
	env, err := execEnv(user, opts)
	if err != nil {
		return "", helper.Spec{}, invalid(err)
	}
	placement, err := initPlacement(st)
	if err != nil {
		return "", helper.Spec{}, fmt.Errorf("exec in %s: %w", name, err)
	}
	helperPath, err := helper.FindHelper(m.self)
	if err != nil {
		return "", helper.Spec{}, err
	}
	filter, err := m.execFilter(name)
	if err != nil {
		return "", helper.Spec{}, err
	}
	pidfd, err := openPidfd(st.Init)
	if err != nil {
		return "", helper.Spec{}, fmt.Errorf("exec in %s: %w", name, err)
	}
	cwd := opts.Cwd
	if cwd == "" {
		cwd = user.Home
	}
	return helperPath, helper.Spec{
		Init: os.NewFile(uintptr(pidfd), "init-pidfd"), Namespaces: helper.AllNamespaces,
		CgroupTasks: placement.Tasks, Cgroup2: placement.Unified,
		UID: user.UID, GID: user.GID, Groups: user.Groups, Cwd: cwd, CwdIsHome: opts.Cwd == "", Env: env, Args: opts.Args,
		DropCaps: isolation.DroppedCapabilitiesList(), Seccomp: filter.Hex(),
	}, nil
}

// execFilter is the seccomp filter for a command in the container, from its
// configuration as it is now. An unreadable configuration gives the default
// filter: a damaged file must not open the container up.
func (m *Manager) execFilter(name string) (seccomp.Program, error) {
	cfg, err := config.Load(m.store.ConfigPath(name))
	if err != nil {
		cfg = config.Default()
	}
	filter, err := isolation.Filter(cfg)
	if err != nil {
		return nil, invalid(fmt.Errorf("exec in %s: %w", name, err))
	}
	return filter, nil
}

// execEnv is the command's environment: a clean login-like one, plus -e entries.
func execEnv(u containerUser, opts ExecOptions) ([]string, error) {
	env := []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + u.Home, "USER=" + u.Name, "LOGNAME=" + u.Name, "container=lodge",
	}
	if opts.TTY {
		term := opts.Term
		if term == "" {
			term = "xterm"
		}
		env = append(env, "TERM="+term)
	}
	for _, kv := range opts.Env {
		key, _, ok := strings.Cut(kv, "=")
		if !ok || key == "" {
			return nil, fmt.Errorf("--env %q: use KEY=VALUE", kv)
		}
		env = append(env, kv) // later entries win for execvpe's getenv
	}
	return dedupeEnv(env), nil
}

// dedupeEnv keeps the last value of each key, in first-seen order.
func dedupeEnv(env []string) []string {
	index := map[string]int{}
	var out []string
	for _, kv := range env {
		key, _, _ := strings.Cut(kv, "=")
		if i, ok := index[key]; ok {
			out[i] = kv
			continue
		}
		index[key] = len(out)
		out = append(out, kv)
	}
	return out
}

// receiveFile reads one file descriptor sent with SCM_RIGHTS.
func receiveFile(sock *os.File) (*os.File, error) {
	buf := make([]byte, 1)
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := unix.Recvmsg(int(sock.Fd()), buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return nil, err
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, fmt.Errorf("no descriptor received")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return nil, fmt.Errorf("no descriptor received")
	}
	unix.SetNonblock(fds[0], true)
	return os.NewFile(uintptr(fds[0]), "pty-master"), nil
}

// initPlacement finds the cgroups of the container's init, with the cgroup
// layout recorded by its monitor when there is one.
func initPlacement(st *store.State) (cgroup.Placement, error) {
	if st.CgroupHost != nil {
		return st.CgroupHost.ProcessPlacement(st.Init.PID)
	}
	return cgroup.ProcessPlacement(st.Init.PID)
}
