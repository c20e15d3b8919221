package cgroup

import (
	"path/filepath"
	"testing"
	"time"
)

// statsGroup is a group whose directories are sample control files under
// testdata/stats, laid out as the kernel does on each kind of host.
func statsGroup(dirs ...groupDir) *Group { return &Group{name: "web1", dirs: dirs} }

func TestStatsV1(t *testing.T) {
	dir := func(ctrl string) groupDir {
		return groupDir{h: Hierarchy{Version: 1, Controllers: []string{ctrl}}, path: filepath.Join("testdata/stats/v1", ctrl)}
	}
	// A hybrid host: v1 controllers, and a cgroup2 directory without any
	// (its cpu.stat must not win over cpuacct).
	g := statsGroup(dir("blkio"), dir("cpuacct"), dir("memory"), dir("pids"),
		groupDir{h: Hierarchy{Version: 2}, path: "testdata/stats/v2"})
	got, err := g.Stats()
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{
		MemoryUsage: 52428800, MemoryLimit: 0, SwapUsage: 60817408 - 52428800,
		CPUUsage: 1500 * time.Millisecond, Pids: 7, PidsLimit: 0, OOMKills: 2,
		IORead: 4096 + 1000, IOWrite: 8192 + 24,
	}
	if got != want {
		t.Errorf("Stats =\n%+v, want\n%+v", got, want)
	}
}

func TestStatsV2(t *testing.T) {
	g := statsGroup(groupDir{h: Hierarchy{Version: 2, Controllers: []string{"cpu", "io", "memory", "pids"}}, path: "testdata/stats/v2"})
	got, err := g.Stats()
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{
		MemoryUsage: 33554432, MemoryLimit: 67108864, SwapUsage: 4096,
		CPUUsage: 2500 * time.Millisecond, Pids: 12, PidsLimit: 100, OOMKills: 3,
		IORead: 1048576 + 512, IOWrite: 2097152,
	}
	if got != want {
		t.Errorf("Stats =\n%+v, want\n%+v", got, want)
	}
}

// A group with no controllers at all (a cgroup2-only host whose base got
// none delegated) still reports its CPU time, and nothing else.
func TestStatsV2WithoutControllers(t *testing.T) {
	got, err := statsGroup(groupDir{h: Hierarchy{Version: 2}, path: "testdata/stats/v2"}).Stats()
	if err != nil || got != (Stats{CPUUsage: 2500 * time.Millisecond}) {
		t.Errorf("Stats = %+v, %v; want only the CPU time", got, err)
	}
}

func TestParseStatFiles(t *testing.T) {
	if r, w := parseIOStat(""); r != 0 || w != 0 {
		t.Errorf("parseIOStat of nothing = %d, %d", r, w)
	}
	if r, w := parseBlkioServiceBytes("Total 0"); r != 0 || w != 0 {
		t.Errorf("parseBlkioServiceBytes of an idle group = %d, %d", r, w)
	}
	if n := parseKeyed("oom 1\noom_kill 4", "oom_kill"); n != 4 {
		t.Errorf("parseKeyed = %d, want 4 (not oom's value)", n)
	}
}
