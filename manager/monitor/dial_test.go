package monitor

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDialLongPathKeepsNoDescriptor dials a monitor socket whose path is too
// long for sockaddr_un many times, as a server would: the process's
// descriptor count must not grow.
func TestDialLongPathKeepsNoDescriptor(t *testing.T) {
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 100))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "c1.sock")
	if len(path) <= maxSocketPath {
		t.Fatalf("path %s is short enough for sockaddr_un; the test needs a long one", path)
	}
	ln, err := net.Listen("unix", shortSocketPath(path))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- conn
		}
	}()
	dial := func() {
		conn, err := Dial(path)
		if err != nil {
			t.Fatal(err)
		}
		(<-accepted).Close()
		conn.Close()
	}
	dial() // the first dial sets up the runtime's poller
	before := openDescriptors(t)
	for range 200 {
		dial()
	}
	if after := openDescriptors(t); after != before {
		t.Errorf("200 dials of %s: %d descriptors open before, %d after", path, before, after)
	}
}

func openDescriptors(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}
