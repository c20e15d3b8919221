package monitor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"lodge/config"
	"lodge/internal/cgroup"
	"lodge/internal/failpoint"
	"lodge/internal/isolation"
	"lodge/internal/revert"
	"lodge/internal/store"
	"lodge/lxcfs"
	"lodge/rootfs"

	"golang.org/x/sys/unix"
)

// boot is one run of the container, from init's start to its exit. A guest
// reboot ends a boot and begins the next.
type boot struct {
	cfg        *config.Container
	group      *cgroup.Group
	child      *child      // during set-up; nil for a boot resumed from its state
	proc       *os.Process // init, once it runs
	init       store.Process
	console    *consoleRelay
	stopSignal syscall.Signal
	started    time.Time
	uptimeBase time.Duration // a restore's: the uptime at the checkpoint
	rootfsMode string        // "idmapped" or "shifted"
	exited     chan struct{} // closed when init has exited and been reaped
	wait       syscall.WaitStatus
	// waitLost: init was reaped by another (the monitor that went idle
	// reaped it just before it executed the watcher): how it ended is
	// unknown.
	waitLost bool
}

// rebootRequested reports whether the guest asked for a reboot: reboot(2) in a
// pid namespace ends its init as if killed by SIGHUP (poweroff: SIGINT).
func (b *boot) rebootRequested() bool {
	return b.wait.Signaled() && b.wait.Signal() == syscall.SIGHUP
}

// poweroffRequested reports whether the guest powered itself off or
// halted: reboot(2) in a pid namespace ends its init as if killed by SIGINT.
func (b *boot) poweroffRequested() bool {
	return b.wait.Signaled() && b.wait.Signal() == syscall.SIGINT
}

// boot starts the container: cgroups, namespaces, mounts, init. On failure it
// leaves nothing behind. It runs on a thread of its own, the stage of the
// container's locked mounts (see rootfs.Stage), which exits when it is done.
func (m *Monitor) boot() (*boot, error) {
	type result struct {
		b   *boot
		err error
	}
	done := make(chan result, 1)
	go func() {
		// Never unlocked: the thread, in the stage's mount namespace, exits
		// with this goroutine.
		runtime.LockOSThread()
		b, err := m.bootOnStage()
		done <- result{b, err}
	}()
	r := <-done
	return r.b, r.err
}

func (m *Monitor) bootOnStage() (*boot, error) {
	timer := newPhaseTimer()
	cfg, err := config.Load(m.store.ConfigPath(m.name))
	if err != nil {
		return nil, err
	}
	r := revert.New()
	defer r.Fail()
	// From here on this thread is in the stage's mount namespace, the same
	// as the host's but for the stage's directory.
	stage, err := rootfs.EnterStage(filepath.Join(m.store.RunDir(), "stage"))
	if err != nil {
		return nil, err
	}
	group, err := m.makeCgroup(cfg)
	if err != nil {
		return nil, err
	}
	r.Add(func() { destroyCgroup(group) })
	timer.mark("cgroup")
	spec := spawnSpec{hostID: m.ids.HostID, count: m.ids.Size, placement: group.Placement(), helper: m.helper, stderr: m.logFile}
	ch, needsMove, err := spawnChild(spec)
	if err != nil {
		return nil, err
	}
	r.Add(ch.kill)
	r.Add(func() { m.store.RemoveState(m.name) })
	timer.mark("spawn")
	if needsMove {
		if err := group.AddProcess(ch.pid()); err != nil {
			return nil, fmt.Errorf("move the container into its cgroup: %w", err)
		}
		timer.mark("join")
	}
	if err := m.attachNICs(ch.pid(), cfg); err != nil {
		return nil, err
	}
	r.Add(func() { m.detachNICs(false) })
	timer.mark("nics")
	b := &boot{cfg: cfg, group: group, child: ch, exited: make(chan struct{})}
	if err := m.startInit(b, stage); err != nil {
		return nil, err
	}
	timer.mark("init")
	m.log.Info("boot timing", timer.attrs...)
	r.Success()
	go b.reap()
	m.setCurrent(b)
	if err := m.writeState(b, store.Running); err != nil {
		m.log.Warn("record state", "err", err)
	}
	m.log.Info("container running", "init", b.init.PID)
	return b, nil
}

// makeCgroup creates the container's cgroup with its limits, delegated to the
// container's root so that an init like systemd can manage its own subtree.
func (m *Monitor) makeCgroup(cfg *config.Container) (*cgroup.Group, error) {
	if err := failpoint.Check("cgroup"); err != nil {
		return nil, err
	}
	group := m.base.Group(m.name)
	if err := group.Create(); err != nil {
		return nil, err
	}
	if err := group.Apply(CgroupLimits(cfg)); err != nil {
		destroyCgroup(group)
		return nil, err
	}
	if err := group.Delegate(int(m.ids.HostID), int(m.ids.HostID)); err != nil {
		destroyCgroup(group)
		return nil, err
	}
	return group, nil
}

// CgroupLimits converts a container's configured limits for its cgroup.
func CgroupLimits(cfg *config.Container) cgroup.Limits {
	return cgroup.Limits{
		MemoryBytes: int64(cfg.Limits.Memory),
		SwapBytes:   int64(cfg.Limits.Swap),
		CPUQuota:    cfg.Limits.CPU,
		Cpuset:      cfg.Limits.Cpuset,
		Pids:        cfg.Limits.Pids,
	}
}

// destroyCgroup kills whatever is left in a container's cgroup and removes it.
func destroyCgroup(group *cgroup.Group) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := group.Kill(ctx); err != nil {
		return err
	}
	return group.Destroy()
}

// startInit hands the child its root filesystem and waits until init runs.
func (m *Monitor) startInit(b *boot, stage *rootfs.Stage) error {
	tree, mode, layers, err := m.rootLayers(b.cfg, b.child, stage)
	if err != nil {
		return err
	}
	b.rootfsMode = mode
	defer tree.Close()
	b.stopSignal, err = m.stopSignal(b.cfg)
	if err != nil {
		return err
	}
	filter, err := isolation.Filter(b.cfg)
	if err != nil {
		return err
	}
	setup := &initSetup{
		Rootfs:   m.store.RootfsPath(m.name),
		Cgroups:  cgroupMounts(b.group),
		Hostname: m.name,
		Command:  b.cfg.Init.Command,
		Env:      initEnv(),
		Seccomp:  filter.Bytes(),
		Nesting:  b.cfg.Security.Nesting,
	}
	setup.OverlayLayers = layers
	// Recorded as STARTING with the child's identity (exec keeps its pid
	// and start time), the container is known to the views server before
	// init's first read of /proc.
	b.started = time.Now().UTC()
	if b.init, err = store.ProcessOf(b.child.pid()); err == nil {
		if err := m.writeState(b, store.Starting); err != nil {
			m.log.Warn("record state", "err", err)
		}
	}
	// Views over /proc are bound by the stage (locked, opened in its mount
	// namespace, while the child prepares); the one over /sys by the child
	// (opened in its namespace), see rootfs.LockedView.
	var procViews []rootfs.View
	sysViews := m.openViews(b, filepath.Join("/proc", strconv.Itoa(b.child.pid()), "root"), false)
	defer func() {
		for _, v := range append(procViews, sysViews...) {
			v.Source.Close()
		}
	}()
	locked := func() rootfs.Locked {
		procViews = m.openViews(b, "", true)
		return rootfs.Locked{Cgroups: setup.Cgroups, Views: procViews, Owner: int(m.ids.HostID), BootIDFile: m.store.BootIDPath(m.name)}
	}
	master, err := b.child.setup(setup, tree, sysViews, stage, locked)
	if err != nil {
		return err
	}
	b.console = newConsoleRelay(master, m.consoleLogPath())
	b.proc = b.child.cmd.Process
	if b.init, err = store.ProcessOf(b.child.pid()); err != nil {
		b.console.close()
		return fmt.Errorf("init exited right after it started: %w", err)
	}
	m.log.Info("root filesystem attached", "mode", mode)
	return nil
}

// initEnv is init's environment, per systemd's Container Interface.
func initEnv() []string {
	return []string{
		"container=" + rootfs.ContainerManager,
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"TERM=linux",
		"HOME=/",
	}
}

func cgroupMounts(group *cgroup.Group) []rootfs.CgroupMount {
	var mounts []rootfs.CgroupMount
	for _, m := range group.InsideMounts() {
		mounts = append(mounts, rootfs.CgroupMount{
			Target: m.Target, FSType: m.FSType, Data: m.Data, Symlinks: m.Symlinks,
		})
	}
	return mounts
}

// reap waits for init to exit.
func (b *boot) reap() {
	if state, err := b.proc.Wait(); err == nil {
		b.wait = state.Sys().(syscall.WaitStatus)
	} else {
		b.waitLost = true
	}
	close(b.exited)
}

func (m *Monitor) consoleLogPath() string {
	return filepath.Join(m.store.LogDir(m.name), "console.log")
}

// teardown cleans up after init exited: console, leftover processes, cgroups.
func (m *Monitor) teardown(b *boot) {
	m.setCurrent(nil)
	if !(b.wait.Signaled() && b.wait.Signal() == syscall.SIGKILL) {
		// Init ended by itself (a poweroff, a crash, a reboot), not killed
		// by a stateful stop's dump: a resume marker left by a dump whose
		// tree went on running (its lodge killed before it answered CRIU)
		// must not make the next start resume an old checkpoint over a
		// root filesystem that has moved on.
		os.Remove(m.store.ResumeMarkerPath(m.name))
	}
	b.console.close()
	m.detachNICs(false)
	if err := destroyCgroup(b.group); err != nil {
		m.log.Error("remove cgroup", "err", err)
	}
}

func (m *Monitor) setCurrent(b *boot) {
	m.mu.Lock()
	m.current = b
	m.mu.Unlock()
}

func (m *Monitor) writeState(b *boot, status store.Status) error {
	self, err := store.ProcessOf(os.Getpid())
	if err != nil {
		return err
	}
	return m.store.WriteState(&store.State{
		Name:       m.name,
		Status:     status,
		Init:       b.init,
		Monitor:    self,
		StartedAt:  b.started,
		UptimeBase: b.uptimeBase,
		StopSignal: int(b.stopSignal),
		HostID:     m.ids.HostID,
		IDCount:    m.ids.Size,
		Cgroups:    b.group.Paths(),
		CgroupHost: m.cgroups,
		RootfsMode: b.rootfsMode,
	})
}

// phaseTimer measures the steps of a boot, for the monitor log: it shows an
// operator where a slow start spends its time.
type phaseTimer struct {
	last  time.Time
	attrs []any
}

func newPhaseTimer() *phaseTimer { return &phaseTimer{last: time.Now()} }

func (t *phaseTimer) mark(phase string) {
	now := time.Now()
	t.attrs = append(t.attrs, phase, now.Sub(t.last).Round(time.Microsecond).String())
	t.last = now
}

// openViews opens the views server's files for the container, below prefix
// (/proc/CHILD/root for the child's mount namespace, "" for the caller's),
// those bound locked or the others (rootfs.LockedView): a
// mount can only be copied by a process in the mount namespace it is in. No
// server, or views disabled: none, and the container sees the host's files.
func (m *Monitor) openViews(b *boot, prefix string, locked bool) []rootfs.View {
	if !b.cfg.LXCFS.Enabled || !lxcfs.Live(m.store) {
		return nil
	}
	var views []rootfs.View
	base := filepath.Join("/", prefix, lxcfs.MountPoint(m.store))
	for _, mount := range lxcfs.Mounts(m.name) {
		if rootfs.LockedView(mount[1]) != locked {
			continue
		}
		f, err := os.OpenFile(filepath.Join(base, mount[0]), unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			m.log.Warn("views unavailable", "file", mount[0], "err", err)
			continue
		}
		views = append(views, rootfs.View{Source: f, Target: mount[1]})
	}
	return views
}
