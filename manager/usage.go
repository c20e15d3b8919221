package manager

import (
	"maps"
	"strings"

	"lodge/internal/cgroup"
	"lodge/internal/store"
	"lodge/network"
	"lodge/storage"
)

// Usage is a container's resource use as the kernel counts it right now,
// for the metrics endpoint and `lodge top`. The counters (CPU, disk,
// network, OOM kills) count from the container's start; a stopped
// container has only its state and its root filesystem's usage.
type Usage struct {
	Name  string       `json:"name"`
	State store.Status `json:"state"`

	CPUSeconds       float64 `json:"cpu_seconds"`
	MemoryBytes      int64   `json:"memory_bytes"`       // page cache included, as the cgroup counts it
	MemoryLimitBytes int64   `json:"memory_limit_bytes"` // 0: unlimited
	SwapBytes        int64   `json:"swap_bytes"`
	Pids             int64   `json:"pids"`
	PidsLimit        int64   `json:"pids_limit"` // 0: unlimited
	OOMKills         int64   `json:"oom_kills"`
	DiskReadBytes    int64   `json:"disk_read_bytes"`
	DiskWriteBytes   int64   `json:"disk_write_bytes"`
	// RootfsBytes is the root filesystem's disk usage where the storage
	// backend knows it without walking the tree (btrfs with quotas); nil
	// otherwise (lodge info shows it, at the cost of a walk).
	RootfsBytes *int64     `json:"rootfs_bytes,omitempty"`
	NICs        []NICUsage `json:"nics,omitempty"`
	// Error says which figures could not be read, and why.
	Error string `json:"error,omitempty"`
}

// NICUsage is the traffic of one bridged NIC, from the container's point
// of view (Receive is what the container received), read from the
// counters of its veth's host end. Macvlan NICs have no host end and are
// not reported.
type NICUsage struct {
	Name            string `json:"name"`
	HostInterface   string `json:"host_interface"`
	ReceiveBytes    uint64 `json:"receive_bytes"`
	TransmitBytes   uint64 `json:"transmit_bytes"`
	ReceivePackets  uint64 `json:"receive_packets"`
	TransmitPackets uint64 `json:"transmit_packets"`
}

// Usage reports every container's resource use, sorted by name. It reads a
// few kernel files per container and lists the host's network links once,
// starts no process and walks no tree, so that a scrape stays cheap with
// hundreds of containers.
func (m *Manager) Usage() ([]Usage, error) {
	names, err := m.store.Names()
	if err != nil || len(names) == 0 {
		return nil, err
	}
	ks, err := m.scanKernel()
	if err != nil {
		return nil, err
	}
	r := &usageReader{m: m, ks: ks, host: ks.base.Host(), quickUsage: storage.QuickUsageUnder(m.store.Root)}
	out := make([]Usage, 0, len(names))
	for _, name := range names {
		out = append(out, r.read(name))
	}
	return out, nil
}

// usageReader holds what one Usage call shares between containers.
type usageReader struct {
	m    *Manager
	ks   *kernelScan
	host *cgroup.Host
	// quickUsage says whether a backend may know a tree's usage cheaply
	// under this root at all; if not, no storage record need be read.
	quickUsage bool
	links      map[string]network.Counters // host links' counters, listed on first need
	linksErr   error
}

func (r *usageReader) read(name string) Usage {
	u := Usage{Name: name, State: store.Stopped}
	var problems []string
	if b, ok := r.rootfsBytes(name); ok {
		u.RootfsBytes = &b
	}
	obs, err := r.observe(name)
	if err != nil {
		problems = append(problems, err.Error())
	}
	if obs.st != nil {
		g := r.group(name, obs.st)
		u.State = liveStatus(obs.st, g)
		if err := r.addStats(&u, g); err != nil {
			problems = append(problems, err.Error())
		}
		if err := r.addNICs(&u); err != nil {
			problems = append(problems, err.Error())
		}
	}
	u.Error = strings.Join(problems, "; ")
	return u
}

// observe is Manager.observe without its cost for a stopped container:
// that one looks the container's id range up, reading the whole id table
// (a scrape would read it once per stopped container). A container with
// no process in its cgroup is stopped whatever its ids are.
func (r *usageReader) observe(name string) (observation, error) {
	if st, err := r.m.store.ReadState(name); err == nil && st != nil && st.Init.Alive() {
		return observation{st: st}, nil
	}
	if len(r.ks.procs(name)) == 0 {
		return observation{}, nil
	}
	return r.m.observe(name, r.ks)
}

// group is the running container's cgroup: the base's group of that name
// when the state records the same directories (as it does unless the host
// config changed since the start), which costs no reads; else the recorded
// ones, opened.
func (r *usageReader) group(name string, st *store.State) *cgroup.Group {
	if g := r.ks.base.Group(name); maps.Equal(g.Paths(), st.Cgroups) {
		return g
	}
	return r.host.Open(st.Cgroups)
}

// liveStatus is the state `lodge list` shows for a container that runs
// (see addRuntime).
func liveStatus(st *store.State, g *cgroup.Group) store.Status {
	if frozen, err := g.Frozen(); err == nil && frozen {
		return store.Frozen
	}
	if st.Status == store.Stopping && !st.Monitor.Alive() {
		return store.Running // nobody is stopping it any more
	}
	return st.Status
}

func (r *usageReader) addStats(u *Usage, g *cgroup.Group) error {
	s, err := g.Stats()
	u.CPUSeconds = s.CPUUsage.Seconds()
	u.MemoryBytes, u.MemoryLimitBytes, u.SwapBytes = s.MemoryUsage, s.MemoryLimit, s.SwapUsage
	u.Pids, u.PidsLimit, u.OOMKills = s.Pids, s.PidsLimit, s.OOMKills
	u.DiskReadBytes, u.DiskWriteBytes = s.IORead, s.IOWrite
	return err
}

// addNICs adds the counters of the container's bridged NICs, as its start
// planned them.
func (r *usageReader) addNICs(u *Usage) error {
	plan, err := network.ReadAttachments(r.m.store.NICsPath(u.Name))
	if err != nil {
		return err
	}
	for _, a := range plan {
		if a.Kind != network.KindBridged {
			continue
		}
		if r.links == nil && r.linksErr == nil {
			r.links, r.linksErr = network.LinkCounters()
		}
		if r.linksErr != nil {
			return r.linksErr
		}
		host := a.NIC.HostName()
		c, ok := r.links[host]
		if !ok {
			continue // being attached or detached right now
		}
		// The host end receives what the container sends, and the reverse.
		u.NICs = append(u.NICs, NICUsage{Name: a.NIC.Name, HostInterface: host,
			ReceiveBytes: c.TxBytes, TransmitBytes: c.RxBytes, ReceivePackets: c.TxPackets, TransmitPackets: c.RxPackets})
	}
	return nil
}

// rootfsBytes is the root filesystem's usage if its backend knows it
// without a walk.
func (r *usageReader) rootfsBytes(name string) (int64, bool) {
	if !r.quickUsage {
		return 0, false
	}
	b, _, err := storage.ForContainer(r.m.store.Root, r.m.store.ContainerDir(name))
	if err != nil {
		return 0, false
	}
	q, ok := b.(storage.QuickUsager)
	if !ok {
		return 0, false
	}
	u, ok, err := q.QuickUsage(r.m.store.RootfsPath(name))
	return u.Bytes, ok && err == nil
}
