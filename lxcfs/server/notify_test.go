package server

import (
	"net"
	"path/filepath"
	"testing"
)

// TestNotifyReady checks the message systemd's Type=notify waits for, on a
// socket path and on an abstract socket (systemd uses either).
func TestNotifyReady(t *testing.T) {
	for _, addr := range []string{filepath.Join(t.TempDir(), "notify"), "@lodge-notify-test-" + t.Name()} {
		conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		t.Setenv("NOTIFY_SOCKET", addr)
		if err := notifyReady(); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		n, err := conn.Read(buf)
		conn.Close()
		if err != nil || string(buf[:n]) != "READY=1" {
			t.Fatalf("%s: read %q, %v; want READY=1", addr, buf[:n], err)
		}
	}
	t.Setenv("NOTIFY_SOCKET", "")
	if err := notifyReady(); err != nil {
		t.Fatalf("without NOTIFY_SOCKET: %v", err)
	}
}
