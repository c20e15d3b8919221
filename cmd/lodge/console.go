package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"lodge/internal/terminal"
	"lodge/manager"
)

func newConsoleCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "console NAME",
		Short: "Attach to a running container's console (detach with Ctrl-a q)",
		Long: `Attach to a running container's /dev/console. The last lines it printed (usually a
login prompt) are shown first. Type Ctrl-a q to detach, Ctrl-a Ctrl-a to send Ctrl-a.`,
		Args:              exactArgs(1, "a container name"),
		ValidArgsFunction: completeNames(a),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := a.manager()
			if err != nil {
				return err
			}
			return runConsole(cmd.Context(), a, m, args[0])
		},
	}
}

// runConsole attaches the user's terminal to the console: raw mode and the
// Ctrl-a q escape here, the console's streams in the manager.
func runConsole(ctx context.Context, a *app, m *manager.Manager, name string) error {
	ctx, detach := context.WithCancel(ctx)
	defer detach()
	resize := make(chan manager.WindowSize, 1)
	restore := func() {}
	defer func() { restore() }()
	err := m.Console(ctx, name, manager.ConsoleOptions{
		Stdin: &detachReader{in: a.stdin, detach: detach}, Stdout: a.stdout,
		Size: windowSize(a.stdin), Resize: resize,
		Attached: func() {
			fmt.Fprintf(a.stdout, "Connected to the console of %s. Type Ctrl-a q to detach.\r\n", name)
			restore = rawTerminal(a.stdin, resize)
		},
	})
	switch {
	case err == nil:
		fmt.Fprint(a.stdout, "\r\nDetached from the console.\r\n")
	case errors.Is(err, manager.ErrConsoleClosed):
		fmt.Fprint(a.stdout, "\r\nThe console closed (the container stopped).\r\n")
		return nil
	}
	return err
}

// detachReader passes the user's keystrokes on through the Ctrl-a q escape
// filter, and detaches (ends the console's context) when the user types it.
type detachReader struct {
	in      io.Reader
	filter  terminal.EscapeFilter
	buf     [1024]byte
	pending []byte // filtered keys not yet returned
	detach  func()
	done    bool // the user detached: keys before the escape are returned first
}

func (r *detachReader) Read(p []byte) (int, error) {
	for len(r.pending) == 0 {
		if r.done {
			r.detach()
			return 0, io.EOF
		}
		n, err := r.in.Read(r.buf[:])
		if n > 0 {
			r.pending, r.done = r.filter.Filter(r.buf[:n])
		}
		if err != nil && len(r.pending) == 0 && !r.done {
			return 0, err
		}
	}
	n := copy(p, r.pending)
	r.pending = r.pending[n:]
	return n, nil
}
