package server

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"lodge/config"
	"lodge/internal/cgroup"
	"lodge/internal/store"
)

// Container is what the server knows of one running container.
type Container struct {
	Name    string
	Cgroups map[string]string // hierarchy key → host directory of its root cgroup
	Started time.Time         // when its clocks began: the state's started_at, less its uptime_base after a restore
	Init    store.Process     // its init
	Enabled bool              // lxcfs.enabled: it has the views mounted

	quotaView atomic.Bool // lxcfs.cpu_quota_view, followed while it runs
	// Guarded by the index's mutex: when the config file was last checked
	// and its modification time then.
	configChecked, configMtime time.Time
}

// QuotaView reports lxcfs.cpu_quota_view, which takes effect at once.
func (c *Container) QuotaView() bool { return c.quotaView.Load() }

// configCheckEvery bounds how often a running container's config file is
// checked for a changed lxcfs.cpu_quota_view.
const configCheckEvery = time.Second

// Index maps a reading process to its container, from the runtime state
// files of one lodge root. A process belongs to a container when its cgroup
// (on the hierarchy the index uses) is the container's root cgroup or below
// it: a systemd service inside is seen as its container.
type Index struct {
	store *store.Store
	host  *cgroup.Host
	key   string // the hierarchy used to place processes

	mu        sync.Mutex
	byDir     map[string]*Container // cgroup directory on the key hierarchy → container
	byName    map[string]indexed    // every container's entry at the last refresh
	refreshed time.Time
	runMtime  time.Time // of ROOT/run when byDir was built
}

// indexed is what a refresh found of one container: its state file's
// identity when it was read, the container (nil: not running), and when its
// init was last seen alive.
type indexed struct {
	state fileStamp
	c     *Container
	alive time.Time
}

// aliveEvery bounds how often a refresh checks that the init of a container
// whose state file is unchanged still runs: a read of /proc/PID/stat each,
// which at every refresh made a start on a host of 300 containers cost the
// server 100 ms of CPU (a start and the first reads refresh several times).
const aliveEvery = time.Second

// fileStamp identifies a version of a file: state files are replaced by a
// rename (a new inode), never written in place.
type fileStamp struct {
	ino   uint64
	size  int64
	mtime time.Time
}

// stampOf returns the stamp of the file at path; ok is false if it is missing.
func stampOf(path string) (stamp fileStamp, ok bool) {
	info, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, false
	}
	stamp = fileStamp{size: info.Size(), mtime: info.ModTime()}
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		stamp.ino = st.Ino
	}
	return stamp, true
}

// refreshEvery bounds how often the state files are read again when a reader
// is in no known container and the run directory looks unchanged.
const refreshEvery = 200 * time.Millisecond

// mtimeSlack: a state file renamed into ROOT/run within this long of the
// last refresh may not have changed the directory's (coarse) mtime.
const mtimeSlack = 20 * time.Millisecond

// NewIndex indexes the running containers of a lodge root.
func NewIndex(st *store.Store, host *cgroup.Host) *Index {
	x := &Index{store: st, host: host}
	x.key = placementKey(host)
	x.refresh()
	return x
}

// placementKey picks the hierarchy to place processes by: cgroup2 where
// mounted (every container process is there), else memory (v1).
func placementKey(h *cgroup.Host) string {
	if _, ok := h.Unified(); ok {
		return cgroup.UnifiedKey
	}
	for _, hi := range h.Hierarchies {
		if hi.Has("memory") {
			return hi.Key()
		}
	}
	if len(h.Hierarchies) > 0 {
		return h.Hierarchies[0].Key()
	}
	return cgroup.UnifiedKey
}

// ContainerOf returns the container of process pid, or nil for the host (or a
// process that is gone).
func (x *Index) ContainerOf(pid int) *Container {
	dir, ok := x.cgroupDir(pid)
	if !ok {
		return nil
	}
	if c := x.lookup(dir); c != nil {
		// A reboot keeps the cgroup but starts a new init: its monitor
		// rewrites the state file, and the view must count from then.
		if x.runDirChanged() {
			x.refresh()
			if c = x.lookup(dir); c == nil {
				return nil
			}
		}
		x.followConfig(c)
		return c
	}
	if !x.stale() {
		return nil
	}
	x.refresh()
	return x.lookup(dir)
}

// stale reports whether the state files may have changed since the last
// refresh, for a reader in no known container; see runDirChanged. Past
// refreshEvery it is stale anyway.
func (x *Index) stale() bool {
	x.mu.Lock()
	old := time.Since(x.refreshed) > refreshEvery
	x.mu.Unlock()
	return old || x.runDirChanged()
}

// runDirChanged reports whether ROOT/run changed since the last refresh: a
// monitor renames its state file in there as it starts (before init runs)
// or reboots a container. One stat per read keeps a new or rebooted
// container's first reads right without re-reading every state file each
// time.
func (x *Index) runDirChanged() bool {
	info, err := os.Stat(x.store.RunDir())
	if err != nil {
		return true
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	m := info.ModTime()
	return !m.Equal(x.runMtime) || x.refreshed.Sub(m) < mtimeSlack
}

func (x *Index) lookup(dir string) *Container {
	x.mu.Lock()
	defer x.mu.Unlock()
	for d := dir; len(d) > 1; d = d[:strings.LastIndexByte(d, '/')] {
		if c, ok := x.byDir[d]; ok {
			return c
		}
	}
	return nil
}

// cgroupDir returns pid's cgroup directory on the index's hierarchy.
func (x *Index) cgroupDir(pid int) (string, bool) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return "", false
	}
	defer f.Close()
	lines, err := cgroup.ParseProcCgroup(f)
	if err != nil {
		return "", false
	}
	for _, hi := range x.host.Hierarchies {
		if hi.Key() != x.key {
			continue
		}
		for _, l := range lines {
			if l.Unified() == (hi.Version == 2) && (hi.Version == 2 || sameHierarchy(l, hi)) {
				return hi.Dir(l.Path)
			}
		}
	}
	return "", false
}

func sameHierarchy(l cgroup.ProcCgroup, hi cgroup.Hierarchy) bool {
	if hi.Name != "" {
		return l.Name == hi.Name
	}
	return strings.Join(l.Controllers, ",") == strings.Join(hi.Controllers, ",")
}

// refresh reads the running containers' state files again: those that
// changed since the last refresh. Every start and stop changes ROOT/run, and
// the next read refreshes: on a host of 500 containers, parsing every state
// and config file each time made each start cost the server a few hundred
// milliseconds of CPU. An unchanged state file keeps its container, checked
// to be still alive (a killed monitor leaves its file behind).
func (x *Index) refresh() {
	var mtime time.Time
	if info, err := os.Stat(x.store.RunDir()); err == nil {
		mtime = info.ModTime()
	}
	x.mu.Lock()
	previous := x.byName
	x.mu.Unlock()
	byDir := map[string]*Container{}
	byName := map[string]indexed{}
	names, _ := x.store.Names()
	for _, name := range names {
		e := x.entry(name, previous)
		byName[name] = e
		if c := e.c; c != nil && c.Cgroups[x.key] != "" {
			byDir[c.Cgroups[x.key]] = c
		}
	}
	x.mu.Lock()
	x.byDir, x.byName = byDir, byName
	x.refreshed = time.Now()
	x.runMtime = mtime
	x.mu.Unlock()
}

// entry is container name's index entry: the previous one if its state
// file is the same and its init still runs (checked at most every
// aliveEvery), else read anew.
func (x *Index) entry(name string, previous map[string]indexed) indexed {
	stamp, ok := stampOf(x.store.StatePath(name))
	if !ok {
		return indexed{}
	}
	now := time.Now()
	if e, ok := previous[name]; ok && e.state == stamp {
		switch {
		case e.c == nil || now.Sub(e.alive) < aliveEvery:
			return e
		case e.c.Init.Alive():
			e.alive = now
			return e
		}
	}
	return indexed{state: stamp, c: x.load(name), alive: now}
}

func (x *Index) load(name string) *Container {
	st, err := x.store.ReadState(name)
	if err != nil || st == nil || !st.Init.Alive() {
		return nil
	}
	// Started is when the container's clocks began: a restored one's had
	// run UptimeBase before its restore.
	c := &Container{Name: name, Cgroups: st.Cgroups, Started: st.StartedAt.Add(-st.UptimeBase), Init: st.Init, Enabled: true}
	path := x.store.ConfigPath(name)
	if info, err := os.Stat(path); err == nil {
		c.configMtime = info.ModTime()
	}
	c.configChecked = time.Now()
	if cfg, err := config.Load(path); err == nil {
		c.quotaView.Store(cfg.LXCFS.CPUQuotaView)
		c.Enabled = cfg.LXCFS.Enabled
	}
	return c
}

// followConfig picks up a changed lxcfs.cpu_quota_view (lodge config set on
// a running container), checking the config file's mtime at most every
// configCheckEvery.
func (x *Index) followConfig(c *Container) {
	path := x.store.ConfigPath(c.Name)
	x.mu.Lock()
	due := time.Since(c.configChecked) >= configCheckEvery
	if due {
		c.configChecked = time.Now()
	}
	last := c.configMtime
	x.mu.Unlock()
	if !due {
		return
	}
	info, err := os.Stat(path)
	if err != nil || info.ModTime().Equal(last) {
		return
	}
	cfg, err := config.Load(path)
	if err != nil {
		return // a config being edited; the next check tries again
	}
	c.quotaView.Store(cfg.LXCFS.CPUQuotaView)
	x.mu.Lock()
	c.configMtime = info.ModTime()
	x.mu.Unlock()
}

// Running lists the indexed containers.
func (x *Index) Running() []*Container {
	x.mu.Lock()
	defer x.mu.Unlock()
	list := make([]*Container, 0, len(x.byDir))
	for _, c := range x.byDir {
		list = append(list, c)
	}
	return list
}
