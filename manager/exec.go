package manager

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"lodge/config"
	"lodge/internal/cgroup"
	"lodge/internal/helper"
	"lodge/internal/isolation"
	"lodge/internal/seccomp"
	"lodge/internal/store"
	"lodge/internal/terminal"
)

// ExecOptions says what to run in a container and how.
type ExecOptions struct {
	Args   []string
	User   string   // NAME, UID, NAME:GROUP or UID:GID inside the container; "" is root
	Env    []string // KEY=VALUE entries added to the default environment
	Cwd    string   // "" is the user's home directory
	TTY    bool     // run on a pty made in the container; Stdin should be a terminal
	Stdin  *os.File
	Stdout io.Writer
	Stderr io.Writer
}

// Exec runs a command in all of a running container's namespaces and in its
// init's cgroup, and returns the command's exit status (128+N for signal N).
func (m *Manager) Exec(ctx context.Context, name string, opts ExecOptions) (int, error) {
	if len(opts.Args) == 0 {
		return 0, invalid(errors.New("no command given; usage: lodge exec NAME -- COMMAND [ARG...]"))
	}
	st, err := m.runningInit(name)
	if err != nil {
		return 0, err
	}
	user, err := lookupUser(m.store.RootfsPath(name), opts.User)
	if err != nil {
		return 0, invalid(err)
	}
	env, err := execEnv(user, opts)
	if err != nil {
		return 0, invalid(err)
	}
	pidfd, err := openPidfd(st.Init)
	if err != nil {
		return 0, fmt.Errorf("exec in %s: %w", name, err)
	}
	init := os.NewFile(uintptr(pidfd), "init-pidfd")
	defer init.Close()
	placement, err := initPlacement(st)
	if err != nil {
		return 0, fmt.Errorf("exec in %s: %w", name, err)
	}
	helperPath, err := helper.FindHelper(m.self)
	if err != nil {
		return 0, err
	}
	filter, err := m.execFilter(name)
	if err != nil {
		return 0, err
	}
	cwd := opts.Cwd
	if cwd == "" {
		cwd = user.Home
	}
	spec := helper.Spec{
		Init: init, Namespaces: helper.AllNamespaces, CgroupTasks: placement.Tasks, Cgroup2: placement.Unified,
		UID: user.UID, GID: user.GID, Groups: user.Groups, Cwd: cwd, CwdIsHome: opts.Cwd == "", Env: env, Args: opts.Args,
		DropCaps: isolation.DroppedCapabilitiesList(), Seccomp: filter.Hex(),
	}
	if opts.TTY {
		return execPty(helperPath, spec, opts)
	}
	return execPlain(helperPath, spec, opts)
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
		term := os.Getenv("TERM")
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

func execPlain(helperPath string, spec helper.Spec, opts ExecOptions) (int, error) {
	stdout, err := outputFile(opts.Stdout)
	if err != nil {
		return 0, err
	}
	stderr, err := outputFile(opts.Stderr)
	if err != nil {
		stdout.started()
		return 0, err
	}
	ignoreTerminalSignals()
	proc, err := helper.Start(helperPath, spec, [3]*os.File{opts.Stdin, stdout.f, stderr.f})
	stdout.started()
	stderr.started()
	if err != nil {
		return 0, fmt.Errorf("exec: %w", err)
	}
	stop := forwardSignals(proc)
	defer stop()
	status, err := proc.Wait()
	stdout.drain()
	stderr.drain()
	return status, err
}

// output is a writer given to the helper as a file: the writer itself when it
// is one (no copying), else a pipe copied into it.
type output struct {
	f      *os.File
	copied chan struct{} // nil when f is the writer itself
}

func outputFile(w io.Writer) (*output, error) {
	if f, ok := w.(*os.File); ok {
		return &output{f: f}, nil
	}
	r, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	o := &output{f: pw, copied: make(chan struct{})}
	go func() { io.Copy(w, r); r.Close(); close(o.copied) }()
	return o, nil
}

// started closes our end of the pipe once the helper holds its own, so that the
// copy ends when the helper and the command exit.
func (o *output) started() {
	if o.copied != nil {
		o.f.Close()
	}
}

// drain waits for the copy to finish.
func (o *output) drain() {
	if o.copied != nil {
		<-o.copied
	}
}

// ignoreTerminalSignals makes lodge outlive Ctrl-C and Ctrl-\: they reach the
// command directly (same process group) and lodge must live on to report its
// exit status. Call it before starting the helper.
func ignoreTerminalSignals() { signal.Ignore(syscall.SIGINT, syscall.SIGQUIT) }

// forwardSignals passes SIGTERM and SIGHUP on to the command. Setting up
// signal delivery costs the Go runtime a thread, so it happens in the
// background while the command runs rather than before it starts.
func forwardSignals(proc *helper.Process) (stop func()) {
	ch := make(chan os.Signal, 4)
	done := make(chan struct{})
	go func() {
		signal.Notify(ch, syscall.SIGTERM, syscall.SIGHUP)
		for {
			select {
			case sig := <-ch:
				proc.Signal(sig.(syscall.Signal))
			case <-done:
				signal.Stop(ch)
				return
			}
		}
	}()
	return func() { close(done) }
}

// execPty runs the command on a pty made inside the container and relays the
// user's terminal to it in raw mode.
func execPty(helperPath string, spec helper.Spec, opts ExecOptions) (int, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "pty-receiver"), os.NewFile(uintptr(fds[1]), "pty-sender")
	defer ours.Close()
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		theirs.Close()
		return 0, err
	}
	defer devNull.Close()
	stderr, err := outputFile(opts.Stderr)
	if err != nil {
		theirs.Close()
		return 0, err
	}
	spec.PtySocket = theirs
	ignoreTerminalSignals()
	proc, err := helper.Start(helperPath, spec, [3]*os.File{devNull, devNull, stderr.f})
	theirs.Close()
	stderr.started()
	if err != nil {
		return 0, fmt.Errorf("exec: %w", err)
	}
	master, err := receiveFile(ours)
	if err != nil { // the helper failed before making the pty; its stderr says why
		return proc.Wait()
	}
	defer master.Close()
	return relayPty(proc, master, opts)
}

func relayPty(proc *helper.Process, master *os.File, opts ExecOptions) (int, error) {
	if rows, cols, ok := terminal.Size(opts.Stdin); ok {
		terminal.SetSize(master, rows, cols)
	}
	if restore, err := terminal.MakeRaw(opts.Stdin); err == nil {
		defer restore()
	}
	stopResize := terminal.OnResize(opts.Stdin, func(rows, cols uint16) { terminal.SetSize(master, rows, cols) })
	defer stopResize()
	stopSignals := forwardSignals(proc)
	defer stopSignals()
	go io.Copy(master, opts.Stdin)
	output := make(chan struct{})
	go func() { io.Copy(opts.Stdout, master); close(output) }()
	status, err := proc.Wait()
	// Let the last output through; a background process still holding the pty
	// must not keep us waiting.
	select {
	case <-output:
	case <-time.After(time.Second):
	}
	return status, err
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
