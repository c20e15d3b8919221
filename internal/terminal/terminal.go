// Package terminal handles the user's terminal for `lodge exec` and `lodge
// console`: raw mode, window size and its changes, and the Ctrl-a q escape that
// detaches from a console. Only the CLI uses it: package manager takes streams
// and window sizes and leaves the caller's terminal alone.
package terminal

import (
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// MakeRaw puts f into raw mode and returns the function that restores it.
func MakeRaw(f *os.File) (restore func(), err error) {
	state, err := term.MakeRaw(int(f.Fd()))
	if err != nil {
		return nil, err
	}
	return func() { term.Restore(int(f.Fd()), state) }, nil
}

// Size returns the window size of terminal f.
func Size(f *os.File) (rows, cols uint16, ok bool) {
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return 0, 0, false
	}
	return ws.Row, ws.Col, true
}

// OnResize calls fn with the new size of terminal f each time it changes, until
// the returned stop function is called.
func OnResize(f *os.File, fn func(rows, cols uint16)) (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGWINCH)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-ch:
				if rows, cols, ok := Size(f); ok {
					fn(rows, cols)
				}
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(ch)
		close(done)
	}
}
