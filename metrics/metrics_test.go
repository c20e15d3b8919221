package metrics

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"lodge/internal/store"
	"lodge/manager"
)

type fixedUsage struct {
	usage []manager.Usage
	err   error
}

func (f fixedUsage) Usage() ([]manager.Usage, error) { return f.usage, f.err }

func TestContainerMetrics(t *testing.T) {
	rootfs := int64(1 << 30)
	src := fixedUsage{usage: []manager.Usage{
		{Name: "db", State: store.Stopped, RootfsBytes: &rootfs, Error: "its state file is corrupt"},
		{
			Name: "web", State: store.Running, CPUSeconds: 12.5, MemoryBytes: 64 << 20, MemoryLimitBytes: 256 << 20,
			SwapBytes: 4096, Pids: 7, PidsLimit: 0, OOMKills: 1, DiskReadBytes: 100, DiskWriteBytes: 200,
			NICs: []manager.NICUsage{{Name: "eth0", HostInterface: "lv-x", ReceiveBytes: 1000, TransmitBytes: 2000, ReceivePackets: 10, TransmitPackets: 20}},
		},
	}}
	want := `
# HELP lodge_container_cpu_seconds_total CPU time the container used since it started.
# TYPE lodge_container_cpu_seconds_total counter
lodge_container_cpu_seconds_total{container="web"} 12.5
# HELP lodge_container_memory_bytes Memory the container's cgroup uses, page cache included.
# TYPE lodge_container_memory_bytes gauge
lodge_container_memory_bytes{container="web"} 6.7108864e+07
# HELP lodge_container_memory_limit_bytes The container's memory limit (limits.memory); absent when unlimited.
# TYPE lodge_container_memory_limit_bytes gauge
lodge_container_memory_limit_bytes{container="web"} 2.68435456e+08
# HELP lodge_container_network_receive_bytes_total Bytes the container received on a bridged NIC.
# TYPE lodge_container_network_receive_bytes_total counter
lodge_container_network_receive_bytes_total{container="web",nic="eth0"} 1000
# HELP lodge_container_network_transmit_packets_total Packets the container sent on a bridged NIC.
# TYPE lodge_container_network_transmit_packets_total counter
lodge_container_network_transmit_packets_total{container="web",nic="eth0"} 20
# HELP lodge_container_oom_kills_total Processes of the container the OOM killer killed since it started.
# TYPE lodge_container_oom_kills_total counter
lodge_container_oom_kills_total{container="web"} 1
# HELP lodge_container_pids Tasks (processes and threads) in the container.
# TYPE lodge_container_pids gauge
lodge_container_pids{container="web"} 7
# HELP lodge_containers_read_errors Containers some of whose figures could not be read at this scrape (lodge top --once --format json says why).
# TYPE lodge_containers_read_errors gauge
lodge_containers_read_errors 1
# HELP lodge_container_rootfs_bytes Disk space of the container's root filesystem, where the storage backend knows it without a walk (btrfs with quotas).
# TYPE lodge_container_rootfs_bytes gauge
lodge_container_rootfs_bytes{container="db"} 1.073741824e+09
# HELP lodge_container_state 1 for the container's current state, 0 for the others.
# TYPE lodge_container_state gauge
lodge_container_state{container="db",state="frozen"} 0
lodge_container_state{container="db",state="running"} 0
lodge_container_state{container="db",state="starting"} 0
lodge_container_state{container="db",state="stopped"} 1
lodge_container_state{container="db",state="stopping"} 0
lodge_container_state{container="web",state="frozen"} 0
lodge_container_state{container="web",state="running"} 1
lodge_container_state{container="web",state="starting"} 0
lodge_container_state{container="web",state="stopped"} 0
lodge_container_state{container="web",state="stopping"} 0
# HELP lodge_containers Containers of this lodge root, by state.
# TYPE lodge_containers gauge
lodge_containers{state="frozen"} 0
lodge_containers{state="running"} 1
lodge_containers{state="starting"} 0
lodge_containers{state="stopped"} 1
lodge_containers{state="stopping"} 0
`
	names := []string{
		"lodge_container_cpu_seconds_total", "lodge_container_memory_bytes", "lodge_container_memory_limit_bytes",
		"lodge_container_network_receive_bytes_total", "lodge_container_network_transmit_packets_total",
		"lodge_container_oom_kills_total", "lodge_container_pids", "lodge_containers_read_errors", "lodge_container_rootfs_bytes",
		"lodge_container_state", "lodge_containers",
		// Absent: the pids limit of a container without one.
		"lodge_container_pids_limit",
	}
	if err := testutil.CollectAndCompare(newContainerCollector(src), strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	// A stopped container has no cgroup figures: only web's are there.
	if n := testutil.CollectAndCount(newContainerCollector(src), "lodge_container_swap_bytes"); n != 1 {
		t.Errorf("%d swap series, want 1 (web's only)", n)
	}
	if lint, err := testutil.CollectAndLint(newContainerCollector(src)); err != nil || len(lint) > 0 {
		t.Errorf("lint = %v, %v", lint, err)
	}
}

// A failed reading fails the scrape's container metrics, visibly, rather
// than reporting no containers.
func TestContainerMetricsError(t *testing.T) {
	c := newContainerCollector(fixedUsage{err: errors.New("cgroup base unreadable")})
	if _, err := testutil.CollectAndFormat(c, expfmt.TypeTextPlain); err == nil || !strings.Contains(err.Error(), "cgroup base unreadable") {
		t.Errorf("collect = %v, want the reading's error", err)
	}
}

func TestDurations(t *testing.T) {
	m := New(fixedUsage{})
	m.ObserveCheckpoint(1500 * time.Millisecond)
	m.ObserveMigration(DirectionOut, 3*time.Second)
	m.ObserveMigration(DirectionIn, 2*time.Second)
	if n := testutil.CollectAndCount(m.checkpoint); n != 1 {
		t.Errorf("%d checkpoint histograms, want 1", n)
	}
	if n := testutil.CollectAndCount(m.migration); n != 2 {
		t.Errorf("%d migration histograms, want 2 (in, out)", n)
	}
	lint, err := testutil.GatherAndLint(m.registry, "lodge_checkpoint_duration_seconds", "lodge_migration_duration_seconds")
	if err != nil || len(lint) > 0 {
		t.Errorf("lint = %v, %v", lint, err)
	}
}
