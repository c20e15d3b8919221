package manager

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"

	"lodge/internal/terminal"
	"lodge/manager/monitor"
)

// Console attaches the user's terminal to a running container's /dev/console
// until the user types Ctrl-a q or the container stops. The last lines the
// console printed (a login prompt, usually) are shown on attach.
func (m *Manager) Console(ctx context.Context, name string, in *os.File, out io.Writer) error {
	if _, err := m.runningInit(name); err != nil {
		return err
	}
	conn, err := monitor.Dial(m.store.SocketPath(name))
	if err != nil {
		return fmt.Errorf("console of %s needs its monitor, which is gone (the container runs on; its console returns after a restart): %w", name, err)
	}
	defer conn.Close()
	rows, cols, _ := terminal.Size(in)
	_, reader, err := monitor.Call(ctx, conn, monitor.Request{Op: "console", Rows: rows, Cols: cols})
	if err != nil {
		return fmt.Errorf("console of %s: %w", name, err)
	}
	fmt.Fprintf(out, "Connected to the console of %s. Type Ctrl-a q to detach.\r\n", name)
	if restore, err := terminal.MakeRaw(in); err == nil {
		defer restore()
	}
	stopResize := terminal.OnResize(in, func(rows, cols uint16) {
		monitor.Do(ctx, m.store.SocketPath(name), monitor.Request{Op: "resize", Rows: rows, Cols: cols})
	})
	defer stopResize()
	return relayConsole(conn, reader, in, out)
}

// relayConsole copies the console to out and keystrokes to the console until
// the user detaches or the console closes.
func relayConsole(conn net.Conn, console *bufio.Reader, in *os.File, out io.Writer) error {
	closed := make(chan struct{})
	go func() {
		io.Copy(out, console)
		close(closed)
	}()
	detached := make(chan struct{})
	go func() {
		var filter terminal.EscapeFilter
		buf := make([]byte, 1024)
		for {
			n, err := in.Read(buf)
			if err != nil {
				return
			}
			keys, detach := filter.Filter(buf[:n])
			if len(keys) > 0 {
				if _, err := conn.Write(keys); err != nil {
					return
				}
			}
			if detach {
				close(detached)
				return
			}
		}
	}()
	select {
	case <-detached:
		fmt.Fprint(out, "\r\nDetached from the console.\r\n")
	case <-closed:
		fmt.Fprint(out, "\r\nThe console closed (the container stopped).\r\n")
	}
	return nil
}
