package manager

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"lodge/config"
	"lodge/internal/helper"
	"lodge/internal/store"
	"lodge/lxcfs"
)

// The /proc and /sys views (lodge lxcfs) are served by one server per lodge
// root, started on demand by the first start of a container that wants them,
// under lodge-helper's supervisor, which restarts it if it dies.

// ensureViews makes sure the views server runs when cfg wants views. A server
// that cannot start does not stop the container from starting: report says
// so, and the container sees the host's files.
func (m *Manager) ensureViews(cfg *config.Container, report func(string, ...any)) {
	if !cfg.LXCFS.Enabled || lxcfs.Live(m.store) {
		return
	}
	if err := m.startViews(); err != nil {
		report("warning: the /proc views (lxcfs) are unavailable, the container sees the host's: %v", err)
	}
}

// startViews starts the supervised server and waits until its tree is
// mounted. When a supervisor lives whose server died, it is restarting it:
// wait for that instead.
func (m *Manager) startViews() error {
	if st := lxcfs.ReadState(m.store); st != nil && st.Supervisor.Alive() {
		return waitLive(m, 5*time.Second)
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return fmt.Errorf("/dev/fuse: %w (modprobe fuse)", err)
	}
	helperPath, err := helper.FindHelper(m.self)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(lxcfsDir(m), lxcfs.DirMode); err != nil {
		return err
	}
	os.Chmod(lxcfsDir(m), lxcfs.DirMode) // an older lodge made it traversable
	logFile, err := os.OpenFile(lxcfs.LogPath(m.store), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	server, err := helper.FindBeside(m.self, lxcfs.ServerName)
	if err != nil {
		return err
	}
	cmd := exec.Command(helperPath, server, m.store.Root)
	cmd.Args[0] = "lodge-lxcfs-supervisor"
	cmd.Env = append(m.monitorEnv(), "_LODGE_SUPERVISE=1")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	go cmd.Wait()
	return waitLive(m, 5*time.Second)
}

func lxcfsDir(m *Manager) string { return m.store.RunDir() + "/lxcfs" }

func waitLive(m *Manager, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for !lxcfs.Live(m.store) {
		if time.Now().After(deadline) {
			return fmt.Errorf("the server did not come up within %v; see %s", timeout, lxcfs.LogPath(m.store))
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// ViewsStatus describes the views server of this root.
type ViewsStatus struct {
	Running       bool   `json:"running" yaml:"running"`
	ServerPID     int    `json:"server_pid" yaml:"server_pid"`
	SupervisorPID int    `json:"supervisor_pid,omitempty" yaml:"supervisor_pid,omitempty"`
	MountPoint    string `json:"mountpoint" yaml:"mountpoint"`
	Log           string `json:"log" yaml:"log"`
}

// ViewsStatus reports the views server.
func (m *Manager) ViewsStatus() ViewsStatus {
	s := ViewsStatus{MountPoint: lxcfs.MountPoint(m.store), Log: lxcfs.LogPath(m.store), Running: lxcfs.Live(m.store)}
	if st := lxcfs.ReadState(m.store); st != nil {
		if st.Server.Alive() {
			s.ServerPID = st.Server.PID
		}
		if st.Supervisor.Alive() {
			s.SupervisorPID = st.Supervisor.PID
		}
	}
	return s
}

// StopViews stops the views server (and its supervisor) and unmounts its
// tree. Running containers would keep running with failing views until a
// server runs again (the next container start starts one, which
// re-attaches them), so it is refused while they use it, unless force.
func (m *Manager) StopViews(force bool) error {
	if users := m.viewsUsers(); len(users) > 0 && !force {
		return kindError{fmt.Errorf("running containers use the views (%s): stopping the server would break their /proc files until it runs again; stop them first, use lodge lxcfs restart to upgrade, or --force",
			strings.Join(users, ", ")), ErrRunning}
	}
	st := lxcfs.ReadState(m.store)
	if st == nil {
		return unmountStale(m)
	}
	target := st.Server
	if st.Supervisor.Alive() {
		target = st.Supervisor // it passes SIGTERM on and exits with the server
	}
	if !signalAndWait(target, syscall.SIGTERM, 10*time.Second) {
		return fmt.Errorf("the views server (pid %d) did not stop within 10s", target.PID)
	}
	signalAndWait(st.Server, 0, 5*time.Second)
	return unmountStale(m)
}

// signalAndWait sends sig (none for 0) to p through a pidfd, immune to pid
// reuse, and waits until p exits; true when it has, or was gone already.
func signalAndWait(p store.Process, sig syscall.Signal, timeout time.Duration) bool {
	pidfd, err := openPidfd(p)
	if err != nil {
		return true
	}
	defer unix.Close(pidfd)
	if sig != 0 {
		unix.PidfdSendSignal(pidfd, sig, nil, 0)
	}
	return waitPidfd(pidfd, timeout)
}

// viewsUsers names the running containers that have the views mounted.
func (m *Manager) viewsUsers() []string {
	names, _ := m.store.Names()
	var users []string
	for _, name := range names {
		st, err := m.liveState(name)
		if err != nil || st == nil {
			continue
		}
		if cfg, err := config.Load(m.store.ConfigPath(name)); err == nil && cfg.LXCFS.Enabled {
			users = append(users, name)
		}
	}
	return users
}

// RestartViews makes the server exit for its supervisor to start it again
// from the binary on disk (SIGHUP, see lxcfs.ErrRestart), or starts one, and
// waits until the new server is live. It returns the new server's pid.
func (m *Manager) RestartViews() (int, error) {
	st := lxcfs.ReadState(m.store)
	if st == nil || !st.Server.Alive() {
		if err := m.startViews(); err != nil {
			return 0, err
		}
		return m.ViewsStatus().ServerPID, nil
	}
	if !st.Supervisor.Alive() {
		return 0, fmt.Errorf("the views server (pid %d) runs without lodge's supervisor (lodge lxcfs serve under a service manager?): restart it there, for example systemctl restart", st.Server.PID)
	}
	old := st.Server
	if err := syscall.Kill(old.PID, syscall.SIGHUP); err != nil {
		return 0, fmt.Errorf("signal the views server: %w", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if cur := lxcfs.ReadState(m.store); cur != nil && cur.Server != old && cur.Server.Alive() && lxcfs.Live(m.store) {
			return cur.Server.PID, nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return 0, fmt.Errorf("the views server did not come back within 10s; see %s", lxcfs.LogPath(m.store))
}

// unmountStale removes a mount left by a server that died unsupervised.
func unmountStale(m *Manager) error {
	err := unix.Unmount(lxcfs.MountPoint(m.store), unix.MNT_DETACH)
	if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return err
	}
	os.Remove(lxcfs.StatePath(m.store))
	return nil
}
