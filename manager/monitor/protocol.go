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

// The monitor answers on ROOT/run/NAME.sock. A client sends one JSON request
// line and reads one JSON response line; after a successful "console"
// response the connection carries the raw console in both directions.

// Request asks the monitor to do something.
type Request struct {
	Op      string        `json:"op"`                // "ping", "stop", "console", "resize"
	Signal  int           `json:"signal,omitempty"`  // stop: signal for init (0: the container's own)
	Timeout time.Duration `json:"timeout,omitempty"` // stop: grace period before the kill (0: configured)
	Force   bool          `json:"force,omitempty"`   // stop: kill at once
	Rows    uint16        `json:"rows,omitempty"`    // console, resize: terminal size
	Cols    uint16        `json:"cols,omitempty"`
}

// maxRequest is the longest request line the monitor reads; lodge-helper's
// watcher (watch.c, REQUEST_MAX) has the same limit.
const maxRequest = 1024

// maxSignal is the highest signal number (SIGRTMAX).
const maxSignal = 64

// decodeRequest parses one request line and checks it: a known operation and,
// for stop, a signal that exists (a bad one would have init killed at once).
func decodeRequest(line []byte) (Request, error) {
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		return Request{}, fmt.Errorf("malformed request: %w", err)
	}
	switch req.Op {
	case "ping", "console", "resize":
	case "stop":
		if req.Signal < 0 || req.Signal > maxSignal {
			return Request{}, fmt.Errorf("malformed request: signal %d does not exist", req.Signal)
		}
	default:
		return Request{}, fmt.Errorf("unknown request %q", req.Op)
	}
	return req, nil
}

// Response is the monitor's answer.
type Response struct {
	OK     bool   `json:"ok"`
	Error  string `json:"error,omitempty"`
	Killed bool   `json:"killed,omitempty"` // stop: init did not stop in time and was killed
}

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
	data, _ := json.Marshal(req)
	if _, err := conn.Write(append(data, '\n')); err != nil {
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
		return resp, reader, errors.New(resp.Error)
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
