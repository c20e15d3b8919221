package monitor

import (
	"os"
	"strings"
	"testing"

	"lodge/internal/seccomp"
)

func TestMessageWithFiles(t *testing.T) {
	a, b, err := socketpair()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	f, _ := os.Open("/dev/null")
	defer f.Close()
	filter, err := seccomp.Build(seccomp.Config{})
	if err != nil {
		t.Fatal(err)
	}
	setup := &initSetup{Rootfs: "/r", Hostname: "h", Command: []string{"/sbin/init"}, Seccomp: filter.Bytes()}
	if err := send(a, message{Type: "setup", Setup: setup}, f); err != nil {
		t.Fatal(err)
	}
	msg, files, err := receive(b)
	if err != nil || msg.Type != "setup" || msg.Setup.Hostname != "h" || len(files) != 1 {
		t.Fatalf("received %+v, %d files, %v", msg, len(files), err)
	}
	closeAll(files)
	a.Close()
	if _, _, err := receive(b); err != errPeerClosed {
		t.Fatalf("after close: %v, want errPeerClosed", err)
	}
}

func TestShortSocketPath(t *testing.T) {
	short := "/var/lib/lodge/run/c1.sock"
	if got := shortSocketPath(short); got != short {
		t.Errorf("short path changed to %q", got)
	}
	dir := t.TempDir() + "/" + strings.Repeat("d", 100)
	os.Mkdir(dir, 0o755)
	got := shortSocketPath(dir + "/c1.sock")
	if len(got) > maxSocketPath || !strings.HasPrefix(got, "/proc/self/fd/") {
		t.Errorf("long path became %q", got)
	}
}
