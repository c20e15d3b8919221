package tests

import (
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestViewsServeAsService runs the views server as lodge-lxcfs.service does
// (lodge lxcfs serve, Type=notify, no supervisor): it says READY=1 to
// $NOTIFY_SOCKET once its tree is mounted; a container started then uses it
// rather than starting a supervised server of its own; a second server says
// READY=1 too and exits 0 (another server runs: the unit ends without
// failing); SIGTERM ends the first with 0.
func TestViewsServeAsService(t *testing.T) {
	requireFUSE(t)
	e := newEnv(t)
	sock := filepath.Join(t.TempDir(), "notify")
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer notify.Close()
	ready := func(what string) {
		t.Helper()
		notify.SetReadDeadline(time.Now().Add(2 * time.Minute)) // a hang guard, not a timing assert
		buf := make([]byte, 256)
		n, err := notify.Read(buf)
		if err != nil || string(buf[:n]) != "READY=1" {
			t.Fatalf("%s: systemd would have read %q (%v); want READY=1", what, buf[:n], err)
		}
	}

	serve := e.command(context.Background(), "lxcfs", "serve")
	serve.Env = append(serve.Env, "NOTIFY_SOCKET="+sock)
	var serveErr strings.Builder
	serve.Stderr = &serveErr
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- serve.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			serve.Process.Kill()
			<-exited
		}
	}()
	ready("lodge lxcfs serve")
	status := e.viewsServers()
	if !status.Running || status.ServerPID != serve.Process.Pid || status.SupervisorPID != 0 {
		t.Fatalf("after READY=1: %+v; want running, server pid %d (lodge lxcfs serve execs the server), no supervisor", status, serve.Process.Pid)
	}

	e.createBusybox("svc1", "limits.memory=128MiB")
	e.must("start", "svc1")
	if out := e.must("exec", "svc1", "--", "head", "-1", "/proc/meminfo"); !strings.Contains(out, "131072 kB") {
		t.Errorf("the container's /proc/meminfo: %q; want its 128 MiB", out)
	}
	if now := e.viewsServers(); now != status {
		t.Errorf("lodge start with the service's server running: %+v; want it unchanged, %+v", now, status)
	}

	second := e.command(context.Background(), "lxcfs", "serve")
	second.Env = append(second.Env, "NOTIFY_SOCKET="+sock)
	if out, err := second.CombinedOutput(); err != nil || !strings.Contains(string(out), "another server runs") {
		t.Errorf("a second lodge lxcfs serve: %v, %q; want exit 0, saying another server runs", err, out)
	}
	ready("a second lodge lxcfs serve")

	e.must("stop", "svc1")
	serve.Process.Signal(syscall.SIGTERM)
	err = <-exited
	stopped = true
	if err != nil {
		t.Errorf("lodge lxcfs serve after SIGTERM: %v; want exit 0\n%s", err, serveErr.String())
	}
	if now := e.viewsServers(); now.Running || now.ServerPID != 0 {
		t.Errorf("after SIGTERM: %+v; want no server", now)
	}
}

// viewsServers is lodge lxcfs status with the supervisor's pid.
type viewsServers struct {
	Running       bool `json:"running"`
	ServerPID     int  `json:"server_pid"`
	SupervisorPID int  `json:"supervisor_pid"`
}

func (e *env) viewsServers() viewsServers {
	e.t.Helper()
	var s viewsServers
	if err := json.Unmarshal([]byte(e.must("lxcfs", "status", "--format", "json")), &s); err != nil {
		e.t.Fatal(err)
	}
	return s
}
