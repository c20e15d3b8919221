package tests

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"lodge/manager"
)

// TestLibraryExecAndConsole drives exec and console through package manager
// from many goroutines at once, as a server would: plain commands with
// pipes and buffers, a pty resized on the fly, a command killed by its
// context, one ended by a signal sent through the channel, and a console
// attachment that logs in and detaches. The test process's own signal
// handling must be as it was, and no descriptor left open.
func TestLibraryExecAndConsole(t *testing.T) {
	e := newEnv(t)
	e.createBusybox("lib1")
	e.must("start", "lib1")
	waitUntil(t, "getty on the console", func() bool {
		return strings.Contains(e.must("exec", "lib1", "--", "ps"), "getty")
	})
	m := libraryManager(t, e)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a hang guard
	defer cancel()
	terminalSignals := []syscall.Signal{syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM, syscall.SIGHUP}
	ignoredBefore := map[syscall.Signal]bool{}
	for _, sig := range terminalSignals {
		ignoredBefore[sig] = signal.Ignored(sig) // false, unless go test was started with it ignored
	}
	sigIgnBefore := signalsIgnored(t)

	if _, err := m.Exec(ctx, "lib1", manager.ExecOptions{Args: []string{"true"}, Stdout: &bytes.Buffer{}}); err != nil {
		t.Fatal(err) // a first run, so that what the runtime opens once is open
	}
	fdsBefore := descriptors(t)

	jobs := []func(context.Context, *manager.Manager) error{
		libExecPty, libExecPtyHeld, libExecCancelled, libExecSignalled, libConsole,
	}
	for i := range 6 {
		jobs = append(jobs, func(ctx context.Context, m *manager.Manager) error { return libExecPlain(ctx, m, i) })
	}
	var wg sync.WaitGroup
	errs := make([]error, len(jobs))
	for i, job := range jobs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = job(ctx, m) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}

	for _, sig := range terminalSignals {
		if signal.Ignored(sig) != ignoredBefore[sig] {
			t.Errorf("the library changed whether its caller ignores %v", sig)
		}
	}
	if after := signalsIgnored(t); after != sigIgnBefore {
		t.Errorf("the process's ignored signals changed: SigIgn %s before, %s after", sigIgnBefore, after)
	}
	if after := descriptors(t); after != fdsBefore {
		t.Errorf("%d descriptors open before the runs, %d after", fdsBefore, after)
	}
	if out := e.must("exec", "lib1", "--", "ps"); strings.Contains(out, "sleep 1000") {
		t.Errorf("the command cancelled by its context still runs:\n%s", out)
	}
}

// libraryManager opens the env's root as a server would: in this process,
// with the env's host config and the helper built for the tests.
func libraryManager(t *testing.T, e *env) *manager.Manager {
	t.Helper()
	t.Setenv("LODGE_HOST_CONFIG", e.hostConfig)
	t.Setenv("PATH", binDir+string(filepath.ListSeparator)+os.Getenv("PATH")) // lodge-helper
	m, err := manager.New(e.root)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// libExecPlain: stdin from a reader, stdout and stderr into buffers, the exit
// status passed through.
func libExecPlain(ctx context.Context, m *manager.Manager, i int) error {
	var stdout, stderr bytes.Buffer
	status, err := m.Exec(ctx, "lib1", manager.ExecOptions{
		Args:  []string{"sh", "-c", `read line; echo "out:$line"; echo "err:$line" >&2; exit 3`},
		Stdin: strings.NewReader(fmt.Sprintf("hello %d\n", i)), Stdout: &stdout, Stderr: &stderr,
	})
	want := fmt.Sprintf("hello %d\n", i)
	if err != nil || status != 3 || stdout.String() != "out:"+want || stderr.String() != "err:"+want {
		return fmt.Errorf("plain exec %d: status %d, %v, stdout %q, stderr %q", i, status, err, stdout.String(), stderr.String())
	}
	return nil
}

// libExecPty: a command on a pty of the size asked for, then resized through
// the channel, with keystrokes from a pipe.
func libExecPty(ctx context.Context, m *manager.Manager) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stdin, keys := io.Pipe()
	defer keys.Close()
	var out syncBuffer
	resize := make(chan manager.WindowSize, 1)
	script := `tty; stty size; while [ "$(stty size)" = "20 70" ]; do sleep 0.05; done; echo resized; stty size; read x; echo got:$x`
	run, err := m.StartExec(ctx, "lib1", manager.ExecOptions{
		Args: []string{"sh", "-c", script}, TTY: true, Size: manager.WindowSize{Rows: 20, Cols: 70},
		Stdin: stdin, Stdout: &out, Resize: resize,
	})
	if err != nil {
		return fmt.Errorf("pty exec: %w", err)
	}
	if err := out.waitFor(ctx, "20 70"); err != nil {
		return abandon(cancel, run, fmt.Errorf("pty exec, initial size: %w", err))
	}
	resize <- manager.WindowSize{Rows: 40, Cols: 120}
	if err := out.waitFor(ctx, "40 120"); err != nil {
		return abandon(cancel, run, fmt.Errorf("pty exec, after the resize: %w", err))
	}
	io.WriteString(keys, "bye\r")
	status, err := run.Wait()
	if err != nil || status != 0 || !strings.Contains(out.String(), "got:bye") || !regexpFind(`/dev/pts/\d+`, out.String()) {
		return fmt.Errorf("pty exec: status %d, %v, output:\n%s", status, err, out.String())
	}
	return nil
}

// libExecPtyHeld: a command that leaves a process holding its pty (one that
// ignores the hangup) still returns, its output complete, after a resize too.
func libExecPtyHeld(ctx context.Context, m *manager.Manager) error {
	var out syncBuffer
	resize := make(chan manager.WindowSize, 1)
	resize <- manager.WindowSize{Rows: 30, Cols: 90}
	script := `trap "" HUP; sleep 997 & while [ "$(stty size)" != "30 90" ]; do sleep 0.05; done; echo resized`
	status, err := m.Exec(ctx, "lib1", manager.ExecOptions{
		Args: []string{"sh", "-c", script}, TTY: true, Stdout: &out, Resize: resize,
	})
	if err != nil || status != 0 || !strings.Contains(out.String(), "resized") {
		return fmt.Errorf("pty exec leaving a process on the pty: status %d, %v, output:\n%s", status, err, out.String())
	}
	return nil
}

// libExecCancelled: ending the context kills the command.
func libExecCancelled(ctx context.Context, m *manager.Manager) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var out syncBuffer
	run, err := m.StartExec(ctx, "lib1", manager.ExecOptions{
		Args: []string{"sh", "-c", "echo started; exec sleep 1000"}, Stdout: &out,
	})
	if err != nil {
		return fmt.Errorf("cancelled exec: %w", err)
	}
	if err := out.waitFor(ctx, "started"); err != nil {
		return abandon(cancel, run, fmt.Errorf("cancelled exec: %w", err))
	}
	cancel()
	status, err := run.Wait()
	if !errors.Is(err, context.Canceled) || status != 128+int(syscall.SIGKILL) {
		return fmt.Errorf("cancelled exec: status %d, %v; want 137 and context.Canceled", status, err)
	}
	return nil
}

// libExecSignalled: a signal sent through the channel reaches the command.
func libExecSignalled(ctx context.Context, m *manager.Manager) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var out syncBuffer
	signals := make(chan os.Signal, 1)
	run, err := m.StartExec(ctx, "lib1", manager.ExecOptions{
		Args:   []string{"sh", "-c", `trap "echo got TERM; exit 42" TERM; echo ready; while :; do sleep 0.05; done`},
		Stdout: &out, Signals: signals,
	})
	if err != nil {
		return fmt.Errorf("signalled exec: %w", err)
	}
	if err := out.waitFor(ctx, "ready"); err != nil {
		return abandon(cancel, run, fmt.Errorf("signalled exec: %w", err))
	}
	signals <- syscall.SIGTERM
	status, err := run.Wait()
	if err != nil || status != 42 || !strings.Contains(out.String(), "got TERM") {
		return fmt.Errorf("signalled exec: status %d, %v, output %q; want 42 and the trap's message", status, err, out.String())
	}
	return nil
}

// libConsole: attach, see the login prompt, type a user name, get the
// password prompt, interrupt login through the signals channel (getty comes
// back with a new prompt), detach by ending the context.
func libConsole(ctx context.Context, m *manager.Manager) error {
	ctx, detach := context.WithCancel(ctx)
	defer detach()
	stdin, keys := io.Pipe()
	defer keys.Close()
	var out syncBuffer
	attached := make(chan struct{})
	signals := make(chan os.Signal, 1)
	done := make(chan error, 1)
	go func() {
		done <- m.Console(ctx, "lib1", manager.ConsoleOptions{
			Stdin: stdin, Stdout: &out, Size: manager.WindowSize{Rows: 24, Cols: 80},
			Signals: signals, Attached: func() { close(attached) },
		})
	}()
	fail := func(err error) error { detach(); <-done; return fmt.Errorf("console: %w", err) }
	if err := out.waitFor(ctx, "lib1 login:"); err != nil {
		return fail(err)
	}
	select {
	case <-attached:
	default:
		return fail(errors.New("output came before the Attached call"))
	}
	io.WriteString(keys, "root\n")
	if err := out.waitFor(ctx, "Password:"); err != nil {
		return fail(err)
	}
	prompts := strings.Count(out.String(), "lib1 login:")
	signals <- syscall.SIGINT
	newPrompt := func(s string) bool { return strings.Count(s, "lib1 login:") > prompts }
	if err := out.waitUntil(ctx, newPrompt, "a new login prompt after SIGINT through the signals channel"); err != nil {
		return fail(err)
	}
	// busybox's login also gives up by itself after 60 s, with a message:
	// the new prompt must come from the signal.
	if strings.Contains(out.String(), "timed out") {
		return fail(fmt.Errorf("login timed out instead of being interrupted by SIGINT; got:\n%s", out.String()))
	}
	detach()
	if err := <-done; err != nil {
		return fmt.Errorf("console: detaching returned %v, want nil", err)
	}
	return nil
}

// abandon kills a command whose test failed half-way, and returns err.
func abandon(cancel func(), run *manager.Execution, err error) error {
	cancel()
	run.Wait()
	return err
}

// syncBuffer is a buffer that a command writes while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor waits until the buffer holds want, or ctx ends.
func (b *syncBuffer) waitFor(ctx context.Context, want string) error {
	return b.waitUntil(ctx, func(s string) bool { return strings.Contains(s, want) }, fmt.Sprintf("%q in the output", want))
}

// waitUntil waits until ok holds for the buffer's content, or ctx ends;
// what describes the condition for the error.
func (b *syncBuffer) waitUntil(ctx context.Context, ok func(string) bool, what string) error {
	for !ok(b.String()) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("no %s: %w; got:\n%s", what, ctx.Err(), b.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// signalsIgnored is the process's set of ignored signals (SigIgn).
func signalsIgnored(t *testing.T) string {
	t.Helper()
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if value, ok := strings.CutPrefix(line, "SigIgn:"); ok {
			return strings.TrimSpace(value)
		}
	}
	t.Fatal("no SigIgn in /proc/self/status")
	return ""
}

func descriptors(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}
