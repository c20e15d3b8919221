package main

import (
	"os"

	"lodge/internal/terminal"
	"lodge/manager"
)

// The user's terminal for exec and console: the manager takes streams and
// window sizes; raw mode and SIGWINCH are the CLI's business.

// windowSize is the size of terminal f, or zero when f is not a terminal.
func windowSize(f *os.File) manager.WindowSize {
	rows, cols, ok := terminal.Size(f)
	if !ok {
		return manager.WindowSize{}
	}
	return manager.WindowSize{Rows: rows, Cols: cols}
}

// rawTerminal puts terminal f into raw mode and sends its size to sizes each
// time it changes, until the returned function restores it. It does nothing
// when f is not a terminal.
func rawTerminal(f *os.File, sizes chan manager.WindowSize) (restore func()) {
	if !terminal.IsTerminal(f) {
		return func() {}
	}
	restoreMode, err := terminal.MakeRaw(f)
	if err != nil {
		restoreMode = func() {}
	}
	stopResize := terminal.OnResize(f, func(rows, cols uint16) {
		sendLatest(sizes, manager.WindowSize{Rows: rows, Cols: cols})
	})
	return func() {
		stopResize()
		restoreMode()
	}
}

// sendLatest puts size on ch, replacing a size not taken yet: only the last
// one matters, and the SIGWINCH handler must never block.
func sendLatest(ch chan manager.WindowSize, size manager.WindowSize) {
	for {
		select {
		case ch <- size:
			return
		default:
			select {
			case <-ch:
			default:
			}
		}
	}
}
