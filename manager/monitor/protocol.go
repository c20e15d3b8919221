package monitor

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// The monitor answers on ROOT/run/NAME.sock, served by the Go monitor
// (server.go) or, while the container runs undisturbed, by lodge-helper's
// watcher (cmd/lodge-helper/watch.c). A client sends one request line and
// reads one JSON response line; after a successful "console" response the
// connection carries the raw console in both directions. The request line has
// a strict token grammar (wire.go) that the C watcher parses exactly as Go
// does; the shared constants below reach C through the generated
// cmd/lodge-helper/protocol.h (protocol_header_test.go). docs/architecture.md
// ("The monitor socket") is the reference.

//go:generate go test -run ^TestProtocolHeader$ -update-header .

// BinaryName is the monitor's binary (manager/monitor/lodge-monitor),
// installed next to lodge; it is also the monitor's argv[0].
const BinaryName = "lodge-monitor"

// ProtocolVersion is the version of the request grammar and its operations.
// A client sends it in every request; a monitor speaking another version
// answers with CodeVersion and does nothing.
const ProtocolVersion = 1

// Operations.
const (
	OpPing    = "ping"    // is the monitor there?
	OpConsole = "console" // attach to the console (rows, cols: the terminal's size)
	OpResize  = "resize"  // set the console's size (rows, cols)
	OpSignal  = "signal"  // signal the console's foreground process group (signal)
	OpStop    = "stop"    // stop the container (signal, timeout in ms, force)
)

// Request asks the monitor to do something.
type Request struct {
	Op      string        // one of the Op constants
	Signal  int           // stop: signal for init (0: the container's own); signal: the signal
	Timeout time.Duration // stop: grace period before the kill (0: configured); sent in milliseconds
	Force   bool          // stop: kill at once
	Rows    uint16        // console, resize: terminal size
	Cols    uint16
}

// Response is the monitor's answer, one JSON line.
type Response struct {
	OK     bool   `json:"ok"`
	Code   Code   `json:"code,omitempty"`   // why not OK
	Error  string `json:"error,omitempty"`  // what went wrong, for a person
	Killed bool   `json:"killed,omitempty"` // stop: init did not stop in time and was killed
}

// Limits shared by both implementations of the socket and the console.
const (
	maxRequest      = 256             // bytes in a request line, its newline included
	requestTimeout  = 5 * time.Second // to send the whole request line
	maxSignal       = 64              // the highest signal number (SIGRTMAX)
	consoleHistory  = 4 << 10         // console output replayed to a client on attach, so the last prompt shows
	consoleLogLimit = 1 << 20         // console.log is rotated to console.log.1 beyond this
)

// ErrNoMonitor means nothing answers on the monitor socket: the container is
// stopped, or its monitor was killed.
var ErrNoMonitor = errors.New("monitor not reachable")

// Dial connects to the monitor of a container.
func Dial(socketPath string) (net.Conn, error) {
	conn, err := dialUnix(socketPath, 2*time.Second)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoMonitor, err)
	}
	return conn, nil
}

// Call sends req and returns the response. The connection stays open (for
// "console") and is closed when ctx ends.
func Call(ctx context.Context, conn net.Conn, req Request) (Response, *bufio.Reader, error) {
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if _, err := conn.Write(req.encode()); err != nil {
		return Response{}, nil, fmt.Errorf("send %s request to the monitor: %w", req.Op, err)
	}
	reader := bufio.NewReader(conn)
	line, err := reader.ReadBytes('\n')
	if err != nil {
		if ctx.Err() != nil {
			return Response{}, nil, ctx.Err()
		}
		return Response{}, nil, fmt.Errorf("read %s response from the monitor: %w", req.Op, err)
	}
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil {
		return Response{}, nil, fmt.Errorf("decode monitor response: %w", err)
	}
	if !resp.OK {
		return resp, reader, resp.err()
	}
	return resp, reader, nil
}

// Do dials the monitor, sends one request and closes the connection.
func Do(ctx context.Context, socketPath string, req Request) (Response, error) {
	conn, err := Dial(socketPath)
	if err != nil {
		return Response{}, err
	}
	defer conn.Close()
	resp, _, err := Call(ctx, conn, req)
	if err != nil && !resp.OK && resp.Code == "" && ctx.Err() == nil {
		return doLegacy(ctx, socketPath, req) // a monitor started by a lodge before protocol versions
	}
	return resp, err
}

// maxSocketPath is the room in sockaddr_un for a path (108 bytes with the NUL).
const maxSocketPath = 107

// dialUnix connects to the unix socket at path. A path too long for
// sockaddr_un is reached through /proc/self/fd and an open descriptor of its
// directory, closed again once connected: a server dials many times.
func dialUnix(path string, timeout time.Duration) (net.Conn, error) {
	if len(path) <= maxSocketPath {
		return net.DialTimeout("unix", path, timeout)
	}
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	return net.DialTimeout("unix", fmt.Sprintf("/proc/self/fd/%d/%s", dir.Fd(), filepath.Base(path)), timeout)
}

// shortSocketPath keeps the monitor's listening socket path under the
// sockaddr_un limit when the lodge root is deep: the directory is reached
// through /proc/self/fd instead. The descriptor is left open for the life of
// the process (the monitor listens once); clients use dialUnix.
func shortSocketPath(path string) string {
	if len(path) <= maxSocketPath {
		return path
	}
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return path
	}
	longDirsMu.Lock()
	longDirs = append(longDirs, dir) // keep it open: a finalizer would close it
	longDirsMu.Unlock()
	return fmt.Sprintf("/proc/self/fd/%d/%s", dir.Fd(), filepath.Base(path))
}

var (
	longDirsMu sync.Mutex
	longDirs   []*os.File
)
