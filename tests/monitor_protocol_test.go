package tests

import (
	"bufio"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// corpusEntry is one exchange of testdata/monitor-protocol-corpus.json: what
// a client sends to a monitor socket and the one response line it must get
// back (none: "").
type corpusEntry struct {
	Name       string   `json:"name"`
	Send       []string `json:"send"`       // written one after the other
	Pad        int      `json:"pad"`        // bytes of 'x' put before the last chunk's final newline
	CloseWrite bool     `json:"closeWrite"` // shut the sending side down after the last chunk
	Slow       bool     `json:"slow"`       // send, then wait for the monitor's deadline
	Container  bool     `json:"container"`  // the answer needs a running container
	Console    bool     `json:"console"`    // a console request: the connection then carries the console
	Want       string   `json:"want"`
}

func loadCorpus(t *testing.T) []corpusEntry {
	data, err := os.ReadFile("testdata/monitor-protocol-corpus.json")
	if err != nil {
		t.Fatal(err)
	}
	var corpus []corpusEntry
	if err := json.Unmarshal(data, &corpus); err != nil {
		t.Fatal(err)
	}
	return corpus
}

// TestMonitorProtocolConformance sends the same request corpus, valid and
// malformed, to both implementations of the monitor socket, the idle C
// watcher (lodge-helper) and the Go monitor (a lodge without its helper never
// goes idle), and checks that each answers every request with the corpus's
// response, byte for byte. Requests the watcher hands to Go are answered by
// Go after an exec; before each request the test waits for the watcher to be
// back, so every request is first seen by C.
func TestMonitorProtocolConformance(t *testing.T) {
	corpus := loadCorpus(t)
	watcher := newEnv(t)
	watcher.createBusybox("cw")
	watcher.must("start", "cw")
	goEnv := newEnv(t)
	goEnv.bin = lodgeWithoutHelper(t)
	goEnv.createBusybox("cg")
	goEnv.must("start", "cg")
	wi, gi := watcher.info("cw"), goEnv.info("cg")
	wsock := filepath.Join(watcher.root, "run", "cw.sock")
	gsock := filepath.Join(goEnv.root, "run", "cg.sock")
	for _, entry := range corpus {
		if unix.Kill(wi.MonitorPID, 0) != nil || unix.Kill(gi.MonitorPID, 0) != nil {
			t.Fatalf("a monitor died (see its monitor.log) before %q", entry.Name)
		}
		t.Run(entry.Name, func(t *testing.T) {
			waitUntil(t, "the monitor to go idle", func() bool {
				return monitorIsWatcher(wi.MonitorPID) || unix.Kill(wi.MonitorPID, 0) != nil
			})
			fromC := exchange(t, wsock, entry)
			if monitorIsWatcher(gi.MonitorPID) {
				t.Fatal("the Go monitor went idle: the helper was found")
			}
			fromGo := exchange(t, gsock, entry)
			if fromC != entry.Want || fromGo != entry.Want {
				t.Errorf("sent %q\n watcher: %s\n Go:      %s\n want:    %s", entry.Send, fromC, fromGo, entry.Want)
			}
		})
	}
	// Both still serve, and stop (handed from the watcher to Go) works.
	watcher.must("stop", "cw")
	goEnv.must("stop", "cg")
}

// TestMonitorConsoleKeepsTypedBytes: what a console client sends right after
// its request line, before the response, reaches the console (the pty echoes
// it back), from the watcher and from Go alike.
func TestMonitorConsoleKeepsTypedBytes(t *testing.T) {
	e := newEnv(t)
	e.createBusybox("ck")
	e.must("start", "ck")
	goEnv := newEnv(t)
	goEnv.bin = lodgeWithoutHelper(t)
	goEnv.createBusybox("ck")
	goEnv.must("start", "ck")
	i := e.info("ck")
	waitUntil(t, "the monitor to go idle", func() bool { return monitorIsWatcher(i.MonitorPID) })
	for _, sock := range []string{filepath.Join(e.root, "run", "ck.sock"), filepath.Join(goEnv.root, "run", "ck.sock")} {
		// getty flushes the terminal's input when it starts: wait for its prompt.
		attachUntil(t, sock, "login: ")
		marker := "typed-" + randomHex(4)
		conn, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(time.Minute)) // a hang guard, not a timing assertion
		if _, err := conn.Write([]byte("LODGE 1 console\necho " + marker + "\n")); err != nil {
			t.Fatal(err)
		}
		reader := bufio.NewReader(conn)
		if line, err := reader.ReadString('\n'); err != nil || line != "{\"ok\":true}\n" {
			t.Fatalf("%s: console response %q, %v", sock, line, err)
		}
		if !sawOnConsole(reader, marker) {
			t.Errorf("%s: the keystrokes sent with the request never reached the console", sock)
		}
		conn.Close()
	}
	e.must("stop", "ck")
	goEnv.must("stop", "ck")
}

// attachUntil attaches to the console until it has shown marker.
func attachUntil(t *testing.T, sock, marker string) {
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Minute)) // a hang guard, not a timing assertion
	conn.Write([]byte("LODGE 1 console\n"))
	if !sawOnConsole(bufio.NewReader(conn), marker) {
		t.Fatalf("%s: the console never showed %q", sock, marker)
	}
}

func sawOnConsole(r *bufio.Reader, marker string) bool {
	var seen strings.Builder
	buf := make([]byte, 4096)
	for !strings.Contains(seen.String(), marker) {
		n, err := r.Read(buf)
		seen.Write(buf[:n])
		if err != nil {
			return false
		}
	}
	return true
}

// lodgeWithoutHelper copies the lodge and lodge-monitor binaries to a
// directory of their own, where they find no lodge-helper: monitors stay in Go.
func lodgeWithoutHelper(t *testing.T) string {
	alone := t.TempDir()
	os.Chmod(alone, 0o755)
	for _, name := range []string{"lodge", "lodge-monitor"} {
		data, err := os.ReadFile(filepath.Join(binDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(alone, name), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(alone, "lodge")
}

func monitorIsWatcher(pid int) bool {
	exe, _ := os.Readlink(filepath.Join("/proc", itoa(pid), "exe"))
	return strings.HasSuffix(exe, "/lodge-helper")
}

// exchange sends entry to the socket and returns the first response line
// without its newline ("" when the monitor closed without one).
func exchange(t *testing.T, sock string, entry corpusEntry) string {
	t.Helper()
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Minute)) // a hang guard, not a timing assertion
	for i, chunk := range entry.Send {
		if i == len(entry.Send)-1 && entry.Pad > 0 {
			body, nl := strings.CutSuffix(chunk, "\n")
			chunk = body + strings.Repeat("x", entry.Pad)
			if nl {
				chunk += "\n"
			}
		}
		if i > 0 {
			time.Sleep(20 * time.Millisecond) // let the monitor read the pieces apart
		}
		if _, err := conn.Write([]byte(chunk)); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			break // the monitor refused and closed before taking it all (a huge line)
		}
	}
	if entry.CloseWrite {
		conn.(*net.UnixConn).CloseWrite()
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil && line != "" {
		t.Fatalf("a response without its newline: %q, %v", line, err)
	}
	return strings.TrimSuffix(line, "\n")
}
