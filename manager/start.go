package manager

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"lodge/config"
	"lodge/internal/cgroup"
	"lodge/internal/failpoint"
	"lodge/internal/helper"
	"lodge/internal/store"
	"lodge/manager/monitor"
	"lodge/rootfs"
)

// Start boots a container and returns once its init runs. The container is
// watched by a monitor process that outlives this call (and this process).
func (m *Manager) Start(ctx context.Context, name string, progress func(format string, args ...any)) error {
	lock, err := m.store.Lock(ctx, name)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	return m.clearShutdownCheckpointOn(name, m.startLocked(ctx, name, progress))
}

// StartFresh is Start that boots the container even when a stateful stop
// left a checkpoint to resume from (the checkpoint stays).
func (m *Manager) StartFresh(ctx context.Context, name string, progress func(format string, args ...any)) error {
	lock, err := m.store.Lock(ctx, name)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	if err := os.Remove(m.resumeMarker(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return m.clearShutdownCheckpointOn(name, m.startLocked(ctx, name, progress))
}

func (m *Manager) startLocked(ctx context.Context, name string, progress func(format string, args ...any)) error {
	if progress == nil {
		progress = func(string, ...any) {}
	}
	if st, err := m.liveState(name); err != nil {
		return err
	} else if st != nil && isFrozen(st) {
		return fmt.Errorf("container %q %w (frozen, pid %d); to let it run: lodge unfreeze %s", name, ErrRunning, st.Init.PID, name)
	} else if st != nil {
		return fmt.Errorf("container %q %w (pid %d); to start it again: lodge restart %s", name, ErrRunning, st.Init.PID, name)
	}
	if err := m.cleanupStale(name); err != nil {
		return err
	}
	if dir := m.resumePending(name); dir != "" {
		return m.resume(ctx, name, dir, progress)
	}
	cfg, err := m.loadConfig(name)
	if err != nil {
		return err
	}
	if err := m.startStorage(ctx, name, cfg); err != nil {
		return err
	}
	if err := m.checkHostFit(name, cfg); err != nil {
		return invalid(err)
	}
	if err := m.attachNetworks(ctx, name, cfg, progress); err != nil {
		return err
	}
	m.ensureViews(cfg, progress)
	if err := m.runMonitor(ctx, name, progress); err != nil {
		m.releaseNICsOrWarn(name, progress)
		return err
	}
	if len(cfg.Proxies) > 0 {
		if err := m.refreshForwards(name, cfg); err != nil {
			progress("warning: port forwards of %s: %v", name, err)
		}
	}
	m.waitSystemd(ctx, name, cfg, progress)
	return nil // the monitor reported the start (monitor.Monitor.run)
}

// systemdReadyLimit bounds how long start waits for systemd to take requests.
const systemdReadyLimit = 30 * time.Second

// waitSystemd returns once a systemd init takes requests: once it has made
// its private socket, /run/systemd/private, which systemctl (as root) talks
// to. systemd makes it only after loading its units, about half a second
// into the boot; a `lodge exec NAME -- systemctl ...` right after a start
// that returned before would fail with "Failed to connect to bus". Other
// inits take their requests as signals, and start returns at once.
func (m *Manager) waitSystemd(ctx context.Context, name string, cfg *config.Container, progress func(string, ...any)) {
	if len(cfg.Init.Command) == 0 {
		return
	}
	st, err := m.store.ReadState(name)
	if err != nil || st == nil {
		return
	}
	// The running container's root, whatever its storage (an overlay's
	// tree directory is not its merged root).
	if !initIsSystemd(filepath.Join("/proc", strconv.Itoa(st.Init.PID), "root"), cfg.Init.Command[0]) {
		return
	}
	socket := filepath.Join("/proc", strconv.Itoa(st.Init.PID), "root/run/systemd/private")
	deadline := time.Now().Add(systemdReadyLimit)
	for time.Now().Before(deadline) && ctx.Err() == nil && st.Init.Alive() {
		if fi, err := os.Stat(socket); err == nil && fi.Mode().Type() == os.ModeSocket {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	progress("systemd in %s does not take requests yet; it may still be booting (see lodge console %s)", name, name)
}

// checkHostFit catches configuration that is valid but cannot start on this
// host. config set and create check the same (and more) with ValidateOn.
func (m *Manager) checkHostFit(name string, cfg *config.Container) error {
	if err := cfg.CheckHost(m.hostFacts()); err != nil {
		return fmt.Errorf("%w; fix it with lodge config set %s or lodge config edit %s", err, name, name)
	}
	return nil
}

// hostFacts reads what config validation needs to know about this host.
// Facts it cannot read are left unknown: the kernel judges at start.
func (m *Manager) hostFacts() config.HostFacts {
	var facts config.HostFacts
	if data, err := os.ReadFile("/sys/devices/system/cpu/online"); err == nil {
		facts.CPUs, _ = config.ParseCPUList(strings.TrimSpace(string(data)))
	}
	if host, err := m.cgroupHost(); err == nil {
		facts.Controllers = host.Controllers()
		if facts.Controllers == nil {
			facts.Controllers = []string{}
		}
	}
	return facts
}

// runMonitor starts `lodge-monitor __monitor ROOT NAME [EXTRA...]` detached
// (its own session, stdio to its log) and relays its status lines until init
// runs or the boot (or restore: extra "restore DIR") failed.
func (m *Manager) runMonitor(ctx context.Context, name string, progress func(format string, args ...any), extra ...string) error {
	if err := failpoint.Check("monitor"); err != nil {
		return err
	}
	statusR, statusW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer statusR.Close()
	logFile, err := m.openMonitorLog(name)
	if err != nil {
		statusW.Close()
		return err
	}
	defer logFile.Close()
	monitorPath, err := helper.FindBeside(m.self, monitor.BinaryName)
	if err != nil {
		statusW.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	cmd := exec.Command(monitorPath, append([]string{"__monitor", m.store.Root, name}, extra...)...)
	cmd.Args[0] = monitor.BinaryName // how lodge finds monitors among processes (kernel.go)
	cmd.Env = m.monitorEnv()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.ExtraFiles = []*os.File{statusW}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	release, err := m.placeMonitor(cmd, name)
	if err != nil {
		statusW.Close()
		return err
	}
	err = cmd.Start()
	release()
	statusW.Close()
	if err != nil {
		return fmt.Errorf("start monitor: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }() // reap it if we outlive it
	err = readMonitorStatus(ctx, statusR, name, progress, logFile.Name())
	if err != nil {
		// A failed start is over only once the monitor has undone its steps and exited.
		select {
		case <-exited:
			m.removeMonitorGroup(name) // the monitor removes it itself, unless it died first
		case <-time.After(10 * time.Second):
		}
	}
	return err
}

// placeMonitor makes the monitor's cgroup, BASE/.monitor/NAME, and sets cmd
// up to start in it, so that the monitor never lives in the caller's cgroup
// (ending an SSH session's scope must not end the container): on cgroup2 by
// clone3(CLONE_INTO_CGROUP), on v1 hierarchies through lodge-helper's init
// stub, which joins them single-threaded and then executes lodge, as for a
// container's init. Both skip the kernel's threadgroup lock that a write to
// cgroup.procs takes (see docs/architecture.md, "lodge exec"). Without the
// helper, the monitor moves itself. release closes what cmd.Start needed.
func (m *Manager) placeMonitor(cmd *exec.Cmd, name string) (release func(), err error) {
	base, err := m.cgroupBase()
	if err != nil {
		return nil, err
	}
	group := base.MonitorGroup(name)
	if err := group.Create(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	var files []*os.File
	release = func() {
		for _, f := range files {
			f.Close()
		}
	}
	p := group.Placement()
	if p.Unified != "" {
		dir, err := os.Open(p.Unified)
		if err != nil {
			return nil, fmt.Errorf("open the monitor's cgroup: %w", err)
		}
		files = append(files, dir)
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, int(dir.Fd())
	}
	helperPath, err := helper.FindHelper(m.self)
	if len(p.Tasks) == 0 || err != nil {
		return release, nil
	}
	exe, err := os.Open(cmd.Path) // the monitor's binary, executed by the stub
	if err != nil {
		release()
		return nil, err
	}
	files = append(files, exe)
	cmd.Path = helperPath
	cmd.ExtraFiles = append(cmd.ExtraFiles, exe)
	cmd.Env = append(cmd.Env, helper.InitStub(2+len(cmd.ExtraFiles), p.Tasks)...)
	return release, nil
}

func (m *Manager) openMonitorLog(name string) (*os.File, error) {
	dir := m.store.LogDir(name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return os.OpenFile(filepath.Join(dir, "monitor.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
}

// monitorEnv passes on what the monitor needs from our environment, nothing more.
// The monitor mostly waits: one P keeps its Go runtime small (fewer per-P caches).
func (m *Manager) monitorEnv() []string {
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "GOMAXPROCS=1"}
	if m.hostPath != "" {
		env = append(env, config.HostConfigEnv+"="+m.hostPath)
	} else if v, ok := os.LookupEnv(config.HostConfigEnv); ok {
		env = append(env, config.HostConfigEnv+"="+v)
	}
	return append(env, failpoint.Env()...)
}

func readMonitorStatus(ctx context.Context, r io.Reader, name string, progress func(string, ...any), logPath string) error {
	lines := bufio.NewScanner(r)
	for lines.Scan() {
		kind, text, _ := strings.Cut(lines.Text(), " ")
		switch kind {
		case "progress":
			progress("%s", text)
		case "ready":
			return nil
		case "error":
			return fmt.Errorf("start %s: %s", name, text)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return fmt.Errorf("start %s: the monitor exited without a word; see %s%s", name, logPath, logTail(logPath, 5))
}

// logTail is the last n lines of the log at path, indented on lines of
// their own after a colon, or "" if it cannot be read: what a monitor that
// died says about why, without a trip to the file.
func logTail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) == 1 && lines[0] == "" {
		return ""
	}
	lines = lines[max(0, len(lines)-n):]
	return ", which ends:\n    " + strings.Join(lines, "\n    ")
}

// cleanupStale removes what a container left behind when it stopped without
// its monitor (killed, or the host lost power): runtime files (state, socket,
// boot id: store.RemoveState) and cgroups, the monitor's included. The
// callers have made sure that nothing of the container runs, so a corrupt
// state file describes nothing and goes too.
func (m *Manager) cleanupStale(name string) error {
	st, err := m.store.ReadState(name)
	if err != nil || st == nil {
		// A monitor at work with no state yet: a start or restore whose
		// lodge was killed (the lock is free) goes on, and its
		// cgroups, staging mounts and files are its own.
		if pid := m.monitorAtWork(name); pid != 0 {
			return fmt.Errorf("container %q has its monitor (pid %d) at work with no state recorded yet (a start or restore whose lodge was killed, or a stop finishing); try again in a moment", name, pid)
		}
		// The socket and boot id of a monitor killed before it wrote the
		// state (a restore's), or of a corrupt state.
		m.store.RemoveState(name)
		m.removeEmptyGroup(name)
		m.removeMonitorGroup(name)
		if err := monitor.RemoveStaging(monitor.RestoreStaging(m.store, name)); err != nil {
			return err
		}
		return m.releaseNICs(name)
	}
	if st.Init.Alive() {
		return nil
	}
	if st.Monitor.Alive() {
		// Its monitor is still tearing down; it removes the state itself.
		return fmt.Errorf("container %q is still stopping (monitor pid %d); try again in a moment", name, st.Monitor.PID)
	}
	if err := monitor.RemoveStaging(monitor.RestoreStaging(m.store, name)); err != nil {
		return err
	}
	if err := destroyGroup(cgroup.Open(st.Cgroups)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale cgroups of %s: %w", name, err)
	}
	m.removeMonitorGroup(name)
	if err := m.releaseNICs(name); err != nil {
		return err
	}
	m.store.RemoveState(name)
	return nil
}

// monitorAtWork returns the pid of container name's monitor if it is alive
// in its monitor group, or 0. Only this root's monitor counts: another lodge
// root sharing the cgroup base has the same group for a same-named
// container, and start refuses that case with its own message.
func (m *Manager) monitorAtWork(name string) int {
	base, err := m.cgroupBase()
	if err != nil {
		return 0
	}
	group := base.MonitorGroup(name)
	if !group.Exists() {
		return 0
	}
	pids, _ := group.Procs()
	for _, pid := range pids {
		if p, err := store.ProcessOf(pid); err == nil && p.Alive() && m.isOwnMonitor(pid, name) {
			return pid
		}
	}
	return 0
}

// isOwnMonitor tells whether process pid is this root's monitor of
// container name: lodge-monitor __monitor ROOT NAME ...
func (m *Manager) isOwnMonitor(pid int, name string) bool {
	cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	args := strings.Split(string(cmdline), "\x00")
	return len(args) > 3 && args[1] == "__monitor" && args[2] == m.store.Root && args[3] == name
}

// removeEmptyGroup removes the container's cgroup where this lodge would
// create it, if it is left over and empty (a container that stopped while its
// state file was missing). Best effort: a group with processes stays.
func (m *Manager) removeEmptyGroup(name string) {
	base, err := m.cgroupBase()
	if err != nil {
		return
	}
	group := base.Group(name)
	if !group.Exists() { // the usual case: a few stats, not a read of every hierarchy's cgroup.procs
		return
	}
	if pids, err := group.Procs(); err == nil && len(pids) == 0 {
		group.Destroy()
	}
}

// removeMonitorGroup removes the group of container name's monitor if it is
// left over and empty: a monitor that was killed could not remove it as it
// exited. A monitor on its way out removes its own.
func (m *Manager) removeMonitorGroup(name string) {
	base, err := m.cgroupBase()
	if err != nil {
		return
	}
	group := base.MonitorGroup(name)
	if !group.Exists() {
		return
	}
	if pids, err := group.Procs(); err == nil && len(pids) == 0 {
		group.Destroy()
	}
}

// initIsSystemd tells, as the monitor does, whether the container's init
// command is systemd: its path, resolved inside the root filesystem (never
// out of it), names systemd. The init process itself may not have executed
// it yet when start returns.
func initIsSystemd(rootfsDir, initPath string) bool {
	resolved, err := rootfs.ResolveInRoot(rootfsDir, initPath)
	if err != nil {
		return false
	}
	return filepath.Base(resolved) == "systemd" || strings.HasSuffix(resolved, "/systemd/systemd")
}
