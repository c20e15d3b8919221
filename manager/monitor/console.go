package monitor

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// consoleHistory and consoleLogLimit, shared with the watcher, are in protocol.go.

const clientQueue = 256 // chunks buffered per client before a slow one is dropped

// consoleRelay always drains the container's console (a full pty buffer would
// block init), keeps it in a log and a short history, and copies it to and from
// attached clients.
type consoleRelay struct {
	master  *os.File
	log     *cappedLog
	done    chan struct{}
	drained chan struct{} // closed when drain has returned

	mu      sync.Mutex
	history []byte
	clients map[chan []byte]struct{}
}

func newConsoleRelay(master *os.File, logPath string) *consoleRelay {
	r := &consoleRelay{
		master:  master,
		log:     openCappedLog(logPath, consoleLogLimit),
		done:    make(chan struct{}),
		drained: make(chan struct{}),
		clients: map[chan []byte]struct{}{},
	}
	go r.drain()
	return r
}

// drain reads the console until the relay is closed. EIO means no process holds
// the console open right now (between two gettys, say): wait and read again.
func (r *consoleRelay) drain() {
	defer close(r.drained)
	buf := make([]byte, 4096)
	for {
		n, err := r.master.Read(buf)
		if n > 0 {
			r.publish(append([]byte(nil), buf[:n]...))
		}
		if err == nil {
			continue
		}
		if !errors.Is(err, syscall.EIO) {
			return
		}
		select {
		case <-r.done:
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (r *consoleRelay) publish(chunk []byte) {
	r.log.Write(chunk)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.history = append(r.history, chunk...)
	if len(r.history) > consoleHistory {
		r.history = append([]byte(nil), r.history[len(r.history)-consoleHistory:]...)
	}
	for q := range r.clients {
		select {
		case q <- chunk:
		default: // too slow: drop it rather than stall the console
			delete(r.clients, q)
			close(q)
		}
	}
}

// attach serves one client until it disconnects or the console closes;
// typed is what the client sent after its request line, its first keystrokes.
func (r *consoleRelay) attach(conn net.Conn, typed []byte) {
	q := make(chan []byte, clientQueue)
	r.mu.Lock()
	q <- append([]byte(nil), r.history...)
	r.clients[q] = struct{}{}
	r.mu.Unlock()
	go func() {
		io.Copy(r.master, io.MultiReader(bytes.NewReader(typed), conn)) // keystrokes to the console
		r.detach(q)
	}()
	for {
		select {
		case chunk, ok := <-q:
			if !ok {
				conn.Close()
				return
			}
			if _, err := conn.Write(chunk); err != nil {
				r.detach(q)
				conn.Close()
				return
			}
		case <-r.done:
			conn.Close()
			return
		}
	}
}

func (r *consoleRelay) detach(q chan []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.clients[q]; ok {
		delete(r.clients, q)
		close(q)
	}
}

// signal sends sig to the console's foreground process group (TIOCSIG on
// the pty master: the kernel delivers it as if typed).
func (r *consoleRelay) signal(sig int) error {
	conn, err := r.master.SyscallConn()
	if err != nil {
		return err
	}
	var ioErr error
	err = conn.Control(func(fd uintptr) { ioErr = unix.IoctlSetInt(int(fd), unix.TIOCSIG, sig) })
	if err != nil {
		return err
	}
	return ioErr
}

// resize sets the console's window size (the attached terminal's).
func (r *consoleRelay) resize(rows, cols uint16) error {
	ws := &unix.Winsize{Row: rows, Col: cols}
	conn, err := r.master.SyscallConn()
	if err != nil {
		return err
	}
	var ioErr error
	err = conn.Control(func(fd uintptr) { ioErr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, ws) })
	if err != nil {
		return err
	}
	return ioErr
}

// handOff stops draining without closing the console, for the idle watcher to
// take over, and returns the recent history.
func (r *consoleRelay) handOff() []byte {
	r.master.SetReadDeadline(time.Now())
	<-r.drained
	r.log.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]byte(nil), r.history...)
}

func (r *consoleRelay) close() {
	close(r.done)
	r.master.Close()
	r.log.Close()
}

// cappedLog appends to a file and rotates it to NAME.1 past a size limit, so a
// chatty console cannot fill the disk.
type cappedLog struct {
	path  string
	limit int64
	f     *os.File
	size  int64
}

func openCappedLog(path string, limit int64) *cappedLog {
	l := &cappedLog{path: path, limit: limit}
	l.open()
	return l
}

func (l *cappedLog) open() {
	os.MkdirAll(filepath.Dir(l.path), 0o700)
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return // the console still works without its log
	}
	l.f = f
	if st, err := f.Stat(); err == nil {
		l.size = st.Size()
	}
}

func (l *cappedLog) Write(p []byte) {
	if l.f == nil {
		return
	}
	if l.size+int64(len(p)) > l.limit {
		l.f.Close()
		os.Rename(l.path, l.path+".1")
		l.size = 0
		l.open()
		if l.f == nil {
			return
		}
	}
	n, _ := l.f.Write(p)
	l.size += int64(n)
}

func (l *cappedLog) Close() {
	if l.f != nil {
		l.f.Close()
	}
}
