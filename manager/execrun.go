package manager

import (
	"context"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"lodge/internal/helper"
)

// Execution is a command started by StartExec. Its Wait must be called once.
type Execution struct {
	ctx     context.Context
	proc    *helper.Process
	master  *os.File // the pty's master; nil without a pty
	resize  <-chan WindowSize
	signals <-chan os.Signal
	ended   chan struct{} // closed once the command has ended: stops control
	control chan struct{} // closed when control has returned
	finish  func()        // completes the output and closes our ends of the streams
}

// run starts watching proc: ctx and the signal and resize channels.
func run(ctx context.Context, proc *helper.Process, master *os.File, opts ExecOptions, finish func()) *Execution {
	e := &Execution{
		ctx: ctx, proc: proc, master: master, resize: opts.Resize, signals: opts.Signals,
		ended: make(chan struct{}), control: make(chan struct{}), finish: finish,
	}
	go e.controlLoop()
	return e
}

// Wait waits for the command and returns its exit status (128+N for signal
// N). Once it returns, the streams are no longer written to.
func (e *Execution) Wait() (int, error) {
	status, err := e.proc.Wait()
	close(e.ended)
	<-e.control // no resize of a closed master, no signal after the reap
	e.finish()
	if err != nil {
		return status, fmt.Errorf("exec: %w", err)
	}
	if e.proc.Killed() && e.ctx.Err() != nil {
		return status, fmt.Errorf("exec: command killed: %w", e.ctx.Err())
	}
	return status, nil
}

// controlLoop passes signals and window sizes on to the command and kills it
// when ctx ends, until the command has ended.
func (e *Execution) controlLoop() {
	defer close(e.control)
	done := e.ctx.Done()
	for {
		select {
		case <-e.ended:
			return
		case <-done:
			e.proc.Kill()
			done = nil
		case sig, ok := <-e.signals:
			if !ok {
				e.signals = nil
				continue
			}
			e.deliver(sig)
		case size, ok := <-e.resize:
			if !ok {
				e.resize = nil
				continue
			}
			if e.master != nil {
				setPtySize(e.master, size)
			}
		}
	}
}

// deliver sends sig to the command (through the helper, which relays the
// signals listed in ExecOptions.Signals).
func (e *Execution) deliver(sig os.Signal) {
	s, ok := sig.(syscall.Signal)
	if !ok {
		return
	}
	switch s {
	case syscall.SIGKILL:
		e.proc.Kill()
	case syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2:
		e.proc.Signal(s)
	}
}

// setPtySize sets the window size of a pty through its master. It does not
// use master.Fd(), which would put the master into blocking mode, where a
// read ties up a thread and the close cannot count on waking it.
func setPtySize(master *os.File, size WindowSize) error {
	conn, err := master.SyscallConn()
	if err != nil {
		return err
	}
	var ioctlErr error
	err = conn.Control(func(fd uintptr) {
		ioctlErr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: size.Rows, Col: size.Cols})
	})
	if err != nil {
		return err
	}
	return ioctlErr
}

// startPlain runs the command with the caller's streams as its stdio.
func startPlain(ctx context.Context, helperPath string, spec helper.Spec, opts ExecOptions) (*Execution, error) {
	var s stdio
	if err := s.open(opts.Stdin, opts.Stdout, opts.Stderr); err != nil {
		s.started()
		s.finish(ctx)
		return nil, fmt.Errorf("exec: %w", err)
	}
	proc, err := helper.Start(helperPath, spec, s.files())
	s.started()
	if err != nil {
		s.finish(ctx)
		return nil, fmt.Errorf("exec: %w", err)
	}
	return run(ctx, proc, nil, opts, func() { s.finish(ctx) }), nil
}

// startPty runs the command on a pty made inside the container and relays
// Stdin and Stdout to its master.
func startPty(ctx context.Context, helperPath string, spec helper.Spec, opts ExecOptions) (*Execution, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("exec: %w", err)
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "pty-receiver"), os.NewFile(uintptr(fds[1]), "pty-sender")
	defer ours.Close()
	var s stdio
	if err := s.open(nil, nil, opts.Stderr); err != nil {
		theirs.Close()
		s.started()
		s.finish(ctx)
		return nil, fmt.Errorf("exec: %w", err)
	}
	spec.PtySocket = theirs
	spec.PtyRows, spec.PtyCols = opts.Size.Rows, opts.Size.Cols
	proc, err := helper.Start(helperPath, spec, s.files())
	theirs.Close()
	s.started()
	if err != nil {
		s.finish(ctx)
		return nil, fmt.Errorf("exec: %w", err)
	}
	master, err := receiveFile(ours)
	if err != nil { // the helper failed before making the pty; its stderr says why
		return run(ctx, proc, nil, opts, func() { s.finish(ctx) }), nil
	}
	relay := relayPty(master, opts.Stdin, opts.Stdout)
	return run(ctx, proc, master, opts, func() { relay(); s.finish(ctx) }), nil
}

// relayPty copies stdin to the pty and the pty to stdout. The returned
// function, called once the command has ended, lets the last output through
// and closes the master; a background process still holding the pty must not
// keep it waiting, so it waits a second at most.
func relayPty(master *os.File, stdin io.Reader, stdout io.Writer) (finish func()) {
	if stdout == nil {
		stdout = io.Discard
	}
	if stdin != nil {
		go io.Copy(master, stdin) // ends at stdin's end or the first write after the close
	}
	output := make(chan struct{})
	go func() { io.Copy(stdout, master); close(output) }()
	return func() {
		select {
		case <-output:
		case <-time.After(time.Second):
		}
		master.Close() // ends the copy (the master is non-blocking: the close wakes its read)
		<-output
	}
}
