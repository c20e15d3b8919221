package monitor

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"lodge/internal/store"
)

func (m *Monitor) listen() error {
	path := m.store.SocketPath(m.name)
	os.Remove(path) // a stale socket of a dead monitor; the CLI holds the container lock
	ln, err := net.Listen("unix", shortSocketPath(path))
	if err != nil {
		return fmt.Errorf("listen on %s: %w", path, err)
	}
	os.Chmod(path, 0o600)
	m.ln = ln
	return nil
}

// server is the Go side of the monitor socket: an accept loop and the
// connections it is handling.
type server struct {
	stopped  chan struct{} // closed when the accept loop has ended
	handlers sync.WaitGroup
}

// startServing answers the socket from Go (unless it already does).
func (m *Monitor) startServing() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.serving != nil {
		return
	}
	s := &server{stopped: make(chan struct{})}
	m.serving = s
	m.ln.(*net.UnixListener).SetDeadline(time.Time{})
	go m.acceptLoop(s)
}

// stopServing ends the accept loop and waits up to a second for the requests
// in progress; it reports whether none is left (a console client can stay
// attached for ever).
func (m *Monitor) stopServing() bool {
	m.mu.Lock()
	s := m.serving
	m.mu.Unlock()
	if s == nil {
		return true
	}
	m.ln.(*net.UnixListener).SetDeadline(time.Now())
	<-s.stopped
	done := make(chan struct{})
	go func() { s.handlers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Second):
		m.mu.Lock()
		m.serving = nil
		m.mu.Unlock()
		m.startServing()
		return false
	}
	m.mu.Lock()
	m.serving = nil
	m.mu.Unlock()
	return true
}

func (m *Monitor) acceptLoop(s *server) {
	defer close(s.stopped)
	for {
		conn, err := m.ln.Accept()
		if err != nil {
			return
		}
		s.handlers.Add(1)
		go func() {
			defer s.handlers.Done()
			m.handle(conn)
		}()
	}
}

// handle reads one request line and answers it. Bytes the client sent after
// the line stay with the connection: a console client's first keystrokes go
// to the console.
func (m *Monitor) handle(conn net.Conn) {
	conn.SetReadDeadline(time.Now().Add(requestTimeout))
	reader := bufio.NewReaderSize(conn, maxRequest)
	line, err := reader.ReadSlice('\n')
	conn.SetReadDeadline(time.Time{})
	if err != nil {
		if refusal, ok := readRefusal(err, len(line)); ok {
			reply(conn, refusal)
		}
		conn.Close()
		return
	}
	rest, _ := reader.Peek(reader.Buffered())
	m.handleLine(conn, line[:len(line)-1], rest)
}

// readRefusal is the answer to a request line that could not be read whole:
// too long, or cut short by the client or the deadline. A client that closed
// without sending anything gets none.
func readRefusal(err error, got int) (Response, bool) {
	switch {
	case err == bufio.ErrBufferFull:
		return replyTooLong, true
	case errors.Is(err, os.ErrDeadlineExceeded) || got > 0:
		return replyIncomplete, true
	}
	return Response{}, false
}

// handleLine answers one request line (without its newline) read from conn;
// rest is what the client sent after it.
func (m *Monitor) handleLine(conn net.Conn, line, rest []byte) {
	req, err := decodeRequest(line)
	if err != nil {
		reply(conn, errorResponse(err))
		conn.Close()
		return
	}
	switch req.Op {
	case OpPing:
		reply(conn, Response{OK: true})
	case OpStop:
		m.replies.Add(1)
		reply(conn, m.stop(req))
		m.replies.Done()
	case OpConsole:
		m.attachConsole(conn, req, rest)
		return // attachConsole owns conn
	case OpResize:
		reply(conn, m.resize(req))
	case OpSignal:
		reply(conn, m.signalConsole(req))
	}
	conn.Close()
}

func errorResponse(err error) Response {
	var e *Error
	if errors.As(err, &e) {
		return Response{Code: e.Code, Error: e.Message}
	}
	return Response{Code: CodeInternal, Error: err.Error()}
}

func reply(conn net.Conn, resp Response) {
	data, _ := json.Marshal(resp)
	conn.Write(append(data, '\n'))
}

func (m *Monitor) currentBoot() *boot {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.current
}

// stop asks init to shut down, kills the container if it has not within the
// timeout (or at once when forced), and answers once everything is cleaned up.
func (m *Monitor) stop(req Request) Response {
	m.mu.Lock()
	m.stopping = true
	b := m.current
	m.mu.Unlock()
	killed := false
	if b != nil {
		if err := m.writeState(b, store.Stopping); err != nil {
			m.log.Warn("record state", "err", err)
		}
		killed = m.shutdown(b, req)
	}
	select {
	case <-m.finished:
		return Response{OK: true, Killed: killed}
	case <-time.After(30 * time.Second):
		return failure(CodeInternal, "the container stopped but its cleanup did not finish; see %s", m.store.LogDir(m.name))
	}
}

// shutdown signals init and waits; it reports whether it had to kill.
func (m *Monitor) shutdown(b *boot, req Request) bool {
	if !req.Force {
		sig := b.stopSignal
		if req.Signal != 0 {
			sig = syscall.Signal(req.Signal)
		}
		timeout := req.Timeout
		if timeout <= 0 {
			timeout = b.cfg.Init.StopTimeout.Std()
		}
		m.log.Info("stopping", "signal", sig, "timeout", timeout)
		if err := b.proc.Signal(sig); err == nil {
			select {
			case <-b.exited:
				return false
			case <-time.After(timeout):
				m.log.Warn("init did not stop in time; killing the container", "timeout", timeout)
			}
		}
	}
	m.mu.Lock()
	m.killed = true // before the kill: watch reports the stop once init is gone
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b.proc.Kill()
	if err := b.group.Kill(ctx); err != nil {
		m.log.Error("kill container", "err", err)
	}
	<-b.exited
	return true
}

func (m *Monitor) attachConsole(conn net.Conn, req Request, typed []byte) {
	b := m.currentBoot()
	if b == nil {
		reply(conn, replyNotRunning)
		conn.Close()
		return
	}
	if req.Rows > 0 && req.Cols > 0 {
		b.console.resize(req.Rows, req.Cols)
	}
	reply(conn, Response{OK: true})
	b.console.attach(conn, typed)
}

// signalConsole sends a signal to the console's foreground process group, as
// a terminal's Ctrl-C would, for clients without a terminal of their own.
func (m *Monitor) signalConsole(req Request) Response {
	b := m.currentBoot()
	if b == nil {
		return replyNotRunning
	}
	if err := b.console.signal(req.Signal); err != nil {
		return replyNoSignal
	}
	return Response{OK: true}
}

func (m *Monitor) resize(req Request) Response {
	b := m.currentBoot()
	if b == nil {
		return replyNotRunning
	}
	if err := b.console.resize(req.Rows, req.Cols); err != nil {
		return failure(CodeInternal, "resize the console: %v", err)
	}
	return Response{OK: true}
}
