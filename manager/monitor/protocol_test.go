package monitor

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serveStopped runs the Go server of a monitor whose container is not running
// on a socket in a temporary directory and returns the socket's path.
func serveStopped(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "m.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	m := &Monitor{ln: ln}
	m.startServing()
	t.Cleanup(func() { m.stopServing(); ln.Close() })
	return path
}

// TestCorpusGoServer sends the conformance corpus (tests/testdata; the e2e
// test sends it to both implementations with a running container) to the Go
// server without a container: every answer that does not need one matches.
func TestCorpusGoServer(t *testing.T) {
	data, err := os.ReadFile("../../tests/testdata/monitor-protocol-corpus.json")
	if err != nil {
		t.Fatal(err)
	}
	var corpus []struct {
		Name       string
		Send       []string
		Pad        int
		CloseWrite bool
		Slow       bool
		Container  bool
		Want       string
	}
	if err := json.Unmarshal(data, &corpus); err != nil {
		t.Fatal(err)
	}
	sock := serveStopped(t)
	for _, entry := range corpus {
		if entry.Container || (entry.Slow && testing.Short()) {
			continue
		}
		t.Run(entry.Name, func(t *testing.T) {
			conn, err := net.Dial("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(time.Minute)) // a hang guard
			text := strings.Join(entry.Send, "")
			if entry.Pad > 0 {
				body, nl := strings.CutSuffix(text, "\n")
				text = body + strings.Repeat("x", entry.Pad)
				if nl {
					text += "\n"
				}
			}
			conn.Write([]byte(text))
			if entry.CloseWrite {
				conn.(*net.UnixConn).CloseWrite()
			}
			line, _ := bufio.NewReader(conn).ReadString('\n')
			if got := strings.TrimSuffix(line, "\n"); got != entry.Want {
				t.Errorf("got  %s\nwant %s", got, entry.Want)
			}
		})
	}
}

// TestErrorKinds: a refusal keeps its kind across the socket.
func TestErrorKinds(t *testing.T) {
	sock := serveStopped(t)
	for _, c := range []struct {
		req  Request
		want error
	}{
		{Request{Op: OpConsole}, ErrNotRunning},
		{Request{Op: OpResize, Rows: 24, Cols: 80}, ErrNotRunning},
		{Request{Op: OpResize}, ErrBadRequest},
		{Request{Op: "freeze"}, ErrUnknownOp},
		{Request{Op: OpStop, Signal: 99}, ErrBadRequest},
	} {
		_, err := Do(context.Background(), sock, c.req)
		var e *Error
		if !errors.Is(err, c.want) || !errors.As(err, &e) || e.Message == "" {
			t.Errorf("%+v: %v (%#v), want %v", c.req, err, err, c.want)
		}
	}
	if _, err := Do(context.Background(), sock, Request{Op: OpPing}); err != nil {
		t.Errorf("ping: %v", err)
	}
}

// TestVersionRefused: a client of another version gets CodeVersion, whatever
// else its line holds.
func TestVersionRefused(t *testing.T) {
	for _, line := range []string{"LODGE 2 ping", "LODGE 0 ping", "LODGE 3 whatever {}"} {
		_, err := decodeRequest([]byte(line))
		if !errors.Is(err, ErrVersion) {
			t.Errorf("%q: %v, want the version refusal", line, err)
		}
	}
}

func TestEncodeDecode(t *testing.T) {
	for _, req := range []Request{
		{Op: OpPing}, {Op: OpConsole}, {Op: OpConsole, Rows: 24, Cols: 80}, {Op: OpResize, Rows: 1, Cols: 65535},
		{Op: OpStop}, {Op: OpStop, Signal: 15, Timeout: 3 * time.Second, Force: true},
	} {
		line := req.encode()
		if len(line) > maxRequest {
			t.Fatalf("%+v encodes to %d bytes", req, len(line))
		}
		got, err := decodeRequest(line[:len(line)-1])
		if err != nil || got != req {
			t.Errorf("%+v: %q decodes to %+v, %v", req, line, got, err)
		}
	}
}

// TestLegacyMonitor: a monitor from before protocol versions (JSON requests,
// errors without a code) refuses a versioned request; Do asks again in JSON,
// so containers that ran through an upgrade of lodge still stop.
func TestLegacyMonitor(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			line, _ := bufio.NewReader(conn).ReadBytes('\n')
			var req struct {
				Op    string `json:"op"`
				Force bool   `json:"force"`
			}
			if json.Unmarshal(line, &req) != nil || req.Op != "stop" || !req.Force {
				conn.Write([]byte(`{"ok":false,"error":"malformed request: invalid character 'L'"}` + "\n"))
			} else {
				conn.Write([]byte(`{"ok":true,"killed":true}` + "\n"))
			}
			conn.Close()
		}
	}()
	resp, err := Do(context.Background(), path, Request{Op: OpStop, Force: true})
	if err != nil || !resp.Killed {
		t.Fatalf("stop through an old monitor: %+v, %v", resp, err)
	}
}
