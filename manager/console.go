package manager

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"

	"lodge/manager/monitor"
)

// ConsoleOptions are the streams of a console attachment. As with Exec,
// Console uses only these: no terminal of the caller, no signal handling
// (the lodge CLI adds raw mode and the Ctrl-a q escape in cmd/lodge).
type ConsoleOptions struct {
	// Stdin's bytes are typed on the console as they are. Its end does not
	// detach: the console's output goes on until ctx ends. Console does not
	// close it; a copy blocked in Read ends when that Read returns.
	Stdin io.Reader
	// Stdout gets the console's output, starting with the last lines it
	// printed (a login prompt, usually). It is not written to once Console
	// has returned.
	Stdout io.Writer
	// Size is the caller's window size for the console (zero: left as is),
	// Resize carries its changes; it may be nil and needs no closing.
	Size   WindowSize
	Resize <-chan WindowSize
	// Signals carries signals for the console's foreground process group, as
	// a keyboard sends them: SIGINT, SIGQUIT or SIGTSTP (the kernel refuses
	// others); it may be nil. A terminal in raw mode sends those keys as
	// bytes through Stdin instead.
	Signals <-chan os.Signal
	// Attached, if set, is called once the monitor has accepted the
	// attachment, before any output is written.
	Attached func()
}

// ErrConsoleClosed is Console's error when the console closed under the
// caller: the container stopped (or its monitor went away).
var ErrConsoleClosed = errors.New("the console closed (the container stopped)")

// Console attaches to a running container's /dev/console until ctx ends,
// which is how a caller detaches (Console then returns nil), or the console
// closes (ErrConsoleClosed).
func (m *Manager) Console(ctx context.Context, name string, opts ConsoleOptions) error {
	if _, err := m.runningInit(name); err != nil {
		return err
	}
	conn, err := monitor.Dial(m.store.SocketPath(name))
	if err != nil {
		return fmt.Errorf("console of %s needs its monitor, which is gone (the container runs on; its console returns after a restart): %w", name, err)
	}
	defer conn.Close()
	req := monitor.Request{Op: "console", Rows: opts.Size.Rows, Cols: opts.Size.Cols}
	_, reader, err := monitor.Call(ctx, conn, req)
	if err != nil {
		return fmt.Errorf("console of %s: %w", name, err)
	}
	if opts.Attached != nil {
		opts.Attached()
	}
	stopControls := m.relayConsoleControls(ctx, name, opts.Resize, opts.Signals)
	defer stopControls()
	return relayConsole(ctx, conn, reader, opts)
}

// relayConsoleControls passes window sizes and signals from the caller's
// channels on to the monitor, one request each, until the returned stop
// function is called.
func (m *Manager) relayConsoleControls(ctx context.Context, name string, sizes <-chan WindowSize, signals <-chan os.Signal) (stop func()) {
	if sizes == nil && signals == nil {
		return func() {}
	}
	socket := m.store.SocketPath(name)
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for sizes != nil || signals != nil {
			select {
			case size, ok := <-sizes:
				if !ok {
					sizes = nil // a nil channel is never ready
					continue
				}
				monitor.Do(ctx, socket, monitor.Request{Op: monitor.OpResize, Rows: size.Rows, Cols: size.Cols})
			case sig, ok := <-signals:
				if !ok {
					signals = nil
					continue
				}
				if s, isSys := sig.(syscall.Signal); isSys {
					monitor.Do(ctx, socket, monitor.Request{Op: monitor.OpSignal, Signal: int(s)})
				}
			case <-done:
				return
			}
		}
	}()
	return func() { close(done); <-stopped }
}

// relayConsole copies the console to Stdout and Stdin to the console until
// ctx ends or the console closes.
func relayConsole(ctx context.Context, conn net.Conn, console *bufio.Reader, opts ConsoleOptions) error {
	out := opts.Stdout
	if out == nil {
		out = io.Discard
	}
	copied := make(chan error, 1)
	go func() {
		_, err := io.Copy(writerOnly{out}, console)
		copied <- err
	}()
	if opts.Stdin != nil {
		go io.Copy(conn, opts.Stdin) // ends at Stdin's end or the first write after the close
	}
	select {
	case <-ctx.Done():
		conn.Close()
		<-copied
		return nil
	case err := <-copied:
		if ctx.Err() != nil {
			return nil
		}
		var werr writeError
		if errors.As(err, &werr) {
			return fmt.Errorf("console output: %w", werr.err)
		}
		return ErrConsoleClosed
	}
}

// writerOnly tells the console's output copy's write errors from its read
// errors (the console closing).
type writerOnly struct{ w io.Writer }

type writeError struct{ err error }

func (e writeError) Error() string { return e.err.Error() }

func (w writerOnly) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	if err != nil {
		return n, writeError{err}
	}
	return n, nil
}
