package metrics

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"lodge/internal/store"
	"lodge/manager"
)

// states are the values of the state labels, every one reported (0 or 1,
// or a count) so that a query need not guess which exist.
var states = []store.Status{store.Stopped, store.Starting, store.Running, store.Stopping, store.Frozen}

// containerCollector reads the containers' usage at each scrape.
type containerCollector struct {
	src UsageSource

	containers, state, readErrors              *prometheus.Desc
	cpu, memory, memoryLimit, swap, pids       *prometheus.Desc
	pidsLimit, oomKills, diskRead, diskWritten *prometheus.Desc
	rootfs                                     *prometheus.Desc
	rxBytes, txBytes, rxPackets, txPackets     *prometheus.Desc
}

func newContainerCollector(src UsageSource) *containerCollector {
	c := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("lodge_container_"+name, help, append([]string{"container"}, labels...), nil)
	}
	return &containerCollector{
		src:        src,
		containers: prometheus.NewDesc("lodge_containers", "Containers of this lodge root, by state.", []string{"state"}, nil),
		readErrors: prometheus.NewDesc("lodge_containers_read_errors",
			"Containers some of whose figures could not be read at this scrape (lodge top --once --format json says why).", nil, nil),
		state:       c("state", "1 for the container's current state, 0 for the others.", "state"),
		cpu:         c("cpu_seconds_total", "CPU time the container used since it started."),
		memory:      c("memory_bytes", "Memory the container's cgroup uses, page cache included."),
		memoryLimit: c("memory_limit_bytes", "The container's memory limit (limits.memory); absent when unlimited."),
		swap:        c("swap_bytes", "Swap the container uses (0 also when the kernel does not account swap)."),
		pids:        c("pids", "Tasks (processes and threads) in the container."),
		pidsLimit:   c("pids_limit", "The container's task limit (limits.pids); absent when unlimited."),
		oomKills:    c("oom_kills_total", "Processes of the container the OOM killer killed since it started."),
		diskRead:    c("disk_read_bytes_total", "Bytes the container read from block devices since it started."),
		diskWritten: c("disk_written_bytes_total", "Bytes the container wrote to block devices since it started."),
		rootfs:      c("rootfs_bytes", "Disk space of the container's root filesystem, where the storage backend knows it without a walk (btrfs with quotas)."),
		rxBytes:     c("network_receive_bytes_total", "Bytes the container received on a bridged NIC.", "nic"),
		txBytes:     c("network_transmit_bytes_total", "Bytes the container sent on a bridged NIC.", "nic"),
		rxPackets:   c("network_receive_packets_total", "Packets the container received on a bridged NIC.", "nic"),
		txPackets:   c("network_transmit_packets_total", "Packets the container sent on a bridged NIC.", "nic"),
	}
}

// Describe implements prometheus.Collector.
func (c *containerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.containers, c.state, c.readErrors, c.cpu, c.memory, c.memoryLimit, c.swap, c.pids, c.pidsLimit,
		c.oomKills, c.diskRead, c.diskWritten, c.rootfs, c.rxBytes, c.txBytes, c.rxPackets, c.txPackets,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: one reading of every container.
func (c *containerCollector) Collect(ch chan<- prometheus.Metric) {
	usage, err := c.src.Usage()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.containers, err)
		return
	}
	counts := map[store.Status]int{}
	failed := 0
	for _, u := range usage {
		counts[u.State]++
		if u.Error != "" {
			failed++
		}
		c.collectOne(ch, u)
	}
	ch <- prometheus.MustNewConstMetric(c.readErrors, prometheus.GaugeValue, float64(failed))
	for _, s := range states {
		ch <- prometheus.MustNewConstMetric(c.containers, prometheus.GaugeValue, float64(counts[s]), stateLabel(s))
	}
}

func (c *containerCollector) collectOne(ch chan<- prometheus.Metric, u manager.Usage) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append([]string{u.Name}, labels...)...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, append([]string{u.Name}, labels...)...)
	}
	for _, s := range states {
		gauge(c.state, boolValue(u.State == s), stateLabel(s))
	}
	if u.RootfsBytes != nil {
		gauge(c.rootfs, float64(*u.RootfsBytes))
	}
	if u.State == store.Stopped {
		return // no cgroup: nothing more to report
	}
	counter(c.cpu, u.CPUSeconds)
	gauge(c.memory, float64(u.MemoryBytes))
	if u.MemoryLimitBytes > 0 {
		gauge(c.memoryLimit, float64(u.MemoryLimitBytes))
	}
	gauge(c.swap, float64(u.SwapBytes))
	gauge(c.pids, float64(u.Pids))
	if u.PidsLimit > 0 {
		gauge(c.pidsLimit, float64(u.PidsLimit))
	}
	counter(c.oomKills, float64(u.OOMKills))
	counter(c.diskRead, float64(u.DiskReadBytes))
	counter(c.diskWritten, float64(u.DiskWriteBytes))
	for _, n := range u.NICs {
		counter(c.rxBytes, float64(n.ReceiveBytes), n.Name)
		counter(c.txBytes, float64(n.TransmitBytes), n.Name)
		counter(c.rxPackets, float64(n.ReceivePackets), n.Name)
		counter(c.txPackets, float64(n.TransmitPackets), n.Name)
	}
}

// stateLabel is a state as a label value: lower case, as Prometheus
// label values usually are ("running").
func stateLabel(s store.Status) string { return strings.ToLower(string(s)) }

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
