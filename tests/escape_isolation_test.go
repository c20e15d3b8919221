package tests

import (
	"bufio"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestEscapeBetweenContainers: from inside a busybox container, root cannot
// reach another container's files, monitor socket, views or abstract unix
// sockets; and no host user can connect to a monitor socket. Each attempt
// has a control showing that what is attempted exists and works where it
// should.
func TestEscapeBetweenContainers(t *testing.T) {
	e := newEnv(t)
	probe := buildUIDProbe(t)
	openUp(t, e.root)
	e.setImages(t.TempDir())
	e.createBusybox("seed")
	e.must("image", "import", hostileTarball(t, e, probe, t.TempDir()), "--alias", "probe")
	e.must("create", "c1", "--image", "probe", "-c", "limits.memory=100MiB")
	e.must("create", "c2", "--image", "probe", "-c", "limits.memory=200MiB")
	e.must("start", "c1")
	e.must("start", "c2")
	marker := "marker-" + randomHex(6)
	e.must("exec", "c2", "--", "sh", "-c", "echo secret > /root/"+marker)

	t.Run("files", func(t *testing.T) {
		c2root := filepath.Join(e.root, "containers", "c2", "rootfs")
		for _, path := range []string{filepath.Join(c2root, "root", marker), c2root, filepath.Join(e.root, "containers")} {
			if r := e.run("exec", "c1", "--", "/usr/bin/probe", "stat", path); r.code == 0 {
				t.Errorf("c1 reaches %s: %s", path, r.stdout)
			}
		}
		if out := e.must("exec", "c1", "--", "sh", "-c", "find / -name '"+marker+"' 2>/dev/null; ls /proc/*/root/root/ 2>/dev/null | grep -c "+marker+" || true"); strings.Contains(out, marker) || strings.TrimSpace(out) != "0" {
			t.Errorf("c1 finds c2's file: %q", out)
		}
		if out := e.must("exec", "c2", "--", "cat", "/root/"+marker); strings.TrimSpace(out) != "secret" {
			t.Fatalf("control: c2 cannot read its own file: %q", out)
		}
	})

	t.Run("monitor socket", func(t *testing.T) {
		sock := filepath.Join(e.root, "run", "c2.sock")
		if r := e.run("exec", "c1", "--", "/usr/bin/probe", "connect", sock); r.code == 0 {
			t.Errorf("c1 connects to c2's monitor socket: %s", r.stdout)
		}
		if fi, err := os.Stat(sock); err != nil {
			t.Error(err)
		} else if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: mode %v, want a socket only root may use", sock, fi.Mode())
		}
		if out, err := asNobody(probe, "connect", sock); err == nil {
			t.Errorf("host user nobody connects to c2's monitor socket: %s", out)
		}
		conn, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatalf("control: root cannot connect to %s: %v", sock, err)
		}
		conn.Close()
	})

	t.Run("views", func(t *testing.T) {
		own := meminfoValue(t, e.must("exec", "c1", "--", "cat", "/proc/meminfo"), "MemTotal")
		other := meminfoValue(t, e.must("exec", "c2", "--", "cat", "/proc/meminfo"), "MemTotal")
		if own != 100*1024 || other != 200*1024 {
			t.Errorf("MemTotal in c1 %d kB, in c2 %d kB; want each its own limit (102400, 204800)", own, other)
		}
		for _, path := range []string{e.viewsMount(), filepath.Join(e.viewsMount(), "containers", "c2"), filepath.Join(e.root, "run")} {
			if r := e.run("exec", "c1", "--", "/usr/bin/probe", "stat", path); r.code == 0 {
				t.Errorf("c1 reaches %s: %s", path, r.stdout)
			}
		}
		// The views mount is allow_other: only its directory's mode keeps
		// host users from reading every container's numbers.
		c2views := filepath.Join(e.viewsMount(), "containers", "c2", "proc", "meminfo")
		if out, err := asNobody(probe, "open", c2views); err == nil {
			t.Errorf("host user nobody reads c2's views at %s: %s", c2views, out)
		}
		if _, err := os.Stat(c2views); err != nil {
			t.Fatalf("control: root cannot reach c2's views: %v", err)
		}
	})

	t.Run("abstract sockets", func(t *testing.T) {
		name := "@lodge-test-" + randomHex(6)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		listener := e.command(ctx, "exec", "c2", "--", "/usr/bin/probe", "listen", name)
		stdout, err := listener.StdoutPipe()
		mustOK(t, err)
		mustOK(t, listener.Start())
		defer func() { cancel(); listener.Wait() }()
		if line, _ := bufio.NewReader(stdout).ReadString('\n'); strings.TrimSpace(line) != "listening" {
			t.Fatalf("c2's listener: %q", line)
		}
		if r := e.run("exec", "c1", "--", "/usr/bin/probe", "connect", name); r.code == 0 {
			t.Errorf("c1 connects to c2's abstract socket %s: %s", name, r.stdout)
		}
		if out, err := asNobody(probe, "connect", name); err == nil {
			t.Errorf("the host connects to c2's abstract socket %s: %s", name, out)
		}
		if r := e.run("exec", "c2", "--", "/usr/bin/probe", "connect", name); r.code != 0 {
			t.Fatalf("control: c2 cannot connect to its own abstract socket: %s", r)
		}
	})
}
