package cgroup

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"lodge/internal/testreq"
)

// The base is fixed by the host config, whatever cgroup the lodge process
// runs in: the sample hosts run lodge in system.slice/lodge.service on some
// hierarchies and at the root on others, and the groups land at the same
// configured paths on all.
func TestBasePaths(t *testing.T) {
	h := sampleHost(t, "hybrid")
	b, err := h.Base("/lodge", map[string]string{"memory": "/m/lodge", "cpu,cpuacct": "/user.slice/x"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"memory":           "/sys/fs/cgroup/memory/m/lodge/web1",
		"cpu,cpuacct":      "/sys/fs/cgroup/cpu,cpuacct/user.slice/x/web1",
		"cpuset":           "/sys/fs/cgroup/cpuset/lodge/web1",
		"freezer":          "/sys/fs/cgroup/freezer/lodge/web1",
		"net_cls,net_prio": "/sys/fs/cgroup/net_cls,net_prio/lodge/web1",
		"pids":             "/sys/fs/cgroup/pids/lodge/web1",
		"systemd":          "/sys/fs/cgroup/systemd/lodge/web1",
		"unified":          "/sys/fs/cgroup/unified/lodge/web1",
	}
	if got := b.Group("web1").Paths(); !reflect.DeepEqual(got, want) {
		t.Errorf("Group paths:\n got %v\nwant %v", got, want)
	}
	for key, p := range b.MonitorGroup("web1").Paths() {
		if wantP := filepath.Join(filepath.Dir(want[key]), MonitorDir, "web1"); p != wantP {
			t.Errorf("MonitorGroup path %s = %s; want %s", key, p, wantP)
		}
	}
	if got := b.Paths()["memory"]; got != "/sys/fs/cgroup/memory/m/lodge" {
		t.Errorf("base on memory = %s", got)
	}
	if g := b.Group("a/b"); g.Create() == nil || len(g.Paths()) != 0 {
		t.Error("a group named a/b was accepted")
	}
}

func TestBaseUnified(t *testing.T) {
	h := sampleHost(t, "unified", "cpu", "memory", "pids")
	b, err := h.Base("/lodge.slice", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := b.Group("web1").Paths(); !reflect.DeepEqual(got, map[string]string{"unified": "/sys/fs/cgroup/lodge.slice/web1"}) {
		t.Errorf("Group paths = %v", got)
	}
	if got := b.MonitorGroup("web1").Paths()["unified"]; got != "/sys/fs/cgroup/lodge.slice/.monitor/web1" {
		t.Errorf("MonitorGroup path = %s", got)
	}
	// The host's own description is left alone.
	if got := h.Hierarchies[0].Controllers; !slices.Equal(got, []string{"cpu", "memory", "pids"}) {
		t.Errorf("Base changed the host's controllers: %v", got)
	}
}

func TestBaseErrors(t *testing.T) {
	h := sampleHost(t, "hybrid")
	for _, c := range []struct {
		parent  string
		parents map[string]string
		want    string
	}{
		{"lodge", nil, `cgroup base "lodge" on the cpu,cpuacct hierarchy is not an absolute, clean cgroup path below the root`},
		{"/", nil, `cgroup base "/" on the cpu,cpuacct hierarchy is not`},
		{"/lodge", map[string]string{"unified": "/a/../b"}, `cgroup base "/a/../b" on the unified hierarchy`},
	} {
		if _, err := h.Base(c.parent, c.parents); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Base(%q, %v) = %v; want %q", c.parent, c.parents, err, c.want)
		}
	}
	// Inside a container, cgroupfs is mounted from the container's own cgroup:
	// a base outside it cannot be reached.
	nested := &Host{Mode: Unified, Hierarchies: []Hierarchy{{Version: 2, Mountpoint: "/sys/fs/cgroup", Root: "/lodge/outer", Own: "/lodge/outer"}}}
	_, err := nested.Base("/lodge", nil)
	want := `cgroup base /lodge on the unified hierarchy is outside the part of it this process sees (/lodge/outer, mounted at /sys/fs/cgroup); set cgroup.parents."unified" in the host config to a cgroup below /lodge/outer`
	if err == nil || err.Error() != want {
		t.Errorf("nested Base = %v\nwant %s", err, want)
	}
	b, err := nested.Base("/lodge/outer/lodge", nil)
	if err != nil || b.Group("c").Paths()["unified"] != "/sys/fs/cgroup/lodge/c" {
		t.Errorf("nested Base below the mount root = %v, %v", b, err)
	}
}

// offeredControllers on a pure v2 host: the base's own cgroup.controllers
// once it exists, else what its nearest existing ancestor passes down.
func TestOfferedControllers(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n")
	write("cgroup.subtree_control", "cpu memory pids\n")
	if got := offeredControllers(filepath.Join(dir, "lodge", "deeper")); !slices.Equal(got, []string{"cpu", "memory", "pids"}) {
		t.Errorf("missing base: %v; want what the ancestor enables for its children", got)
	}
	write("lodge/cgroup.controllers", "cpu memory\n")
	if got := offeredControllers(filepath.Join(dir, "lodge")); !slices.Equal(got, []string{"cpu", "memory"}) {
		t.Errorf("existing base: %v; want its cgroup.controllers", got)
	}
}

func TestHostKeys(t *testing.T) {
	h := sampleHost(t, "hybrid")
	want := []string{"cpu,cpuacct", "cpuset", "freezer", "memory", "net_cls,net_prio", "pids", "systemd", "unified"}
	if got := h.Keys(); !slices.Equal(got, want) {
		t.Errorf("Keys = %v; want %v", got, want)
	}
}

func TestProcCgroupKey(t *testing.T) {
	cgs, err := ParseProcCgroup(strings.NewReader("4:cpu,cpuacct:/a\n1:name=systemd:/b\n0::/c\n"))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, pc := range cgs {
		keys = append(keys, pc.Key())
	}
	if !slices.Equal(keys, []string{"cpu,cpuacct", "systemd", "unified"}) {
		t.Errorf("keys = %v", keys)
	}
}

func TestOwnParents(t *testing.T) {
	parents, err := OwnParents("scratch")
	if err != nil {
		t.Fatal(err)
	}
	self, _ := readProcCgroup("self")
	for _, pc := range self {
		if got := parents[pc.Key()]; got != filepath.Join(pc.Path, "scratch") {
			t.Errorf("OwnParents[%s] = %s; own cgroup %s", pc.Key(), got, pc.Path)
		}
	}
}

// A monitor's group against the kernel: the base's missing levels are made
// (v1 cpusets seeded at each), a second Create while a process is inside is
// fine (a new monitor arriving as the old one leaves), and Leave plus
// Destroy remove the group but keep the base and .monitor.
func TestMonitorGroupLifecycle(t *testing.T) {
	h := rootHost(t)
	parent := uniqueParent(t)
	t.Cleanup(func() { cleanupParent(t, h, parent) })
	parents, err := OwnParents(parent + "/a/b")
	if err != nil {
		t.Fatal(err)
	}
	b, err := h.Base("/unused", parents)
	if err != nil {
		t.Fatal(err)
	}
	mg := b.MonitorGroup("web1")
	if err := mg.Create(); err != nil {
		t.Fatal(err)
	}
	for _, d := range mg.dirs {
		if !d.h.Has("cpuset") {
			continue
		}
		for dir := d.path; dir != d.h.OwnDir(); dir = filepath.Dir(dir) {
			if cpus := readOrFail(t, filepath.Join(dir, "cpuset.cpus")); cpus == "" {
				t.Errorf("%s has no CPUs", dir)
			}
		}
	}
	sleep := startSleep(t)
	if err := mg.AddProcess(sleep.pid); err != nil {
		t.Fatal(err)
	}
	if err := mg.Create(); err != nil {
		t.Errorf("Create with a process inside: %v", err)
	}
	if pids, err := mg.Procs(); err != nil || !slices.Equal(pids, []int{sleep.pid}) {
		t.Errorf("Procs = %v, %v", pids, err)
	}
	if err := mg.Leave(sleep.pid); err != nil {
		t.Fatal(err)
	}
	if err := mg.Destroy(); err != nil {
		t.Fatal(err)
	}
	if mg.Exists() {
		t.Error("the monitor's group exists after Leave and Destroy")
	}
	for _, d := range mg.dirs {
		if !exists(d.parent) {
			t.Errorf("%s removed; the base's .monitor stays", d.parent)
		}
	}
	g := b.Group("web1")
	if err := g.Leave(sleep.pid); err == nil {
		t.Error("Leave of a container's group: no error")
	}
	if err := g.Create(); err != nil {
		t.Fatal(err)
	}
	if err := g.Destroy(); err != nil {
		t.Fatal(err)
	}
}

// A v1 cpuset .monitor that another start has given its memory nodes but
// not yet its CPUs (its copy is two writes): a monitor's group made then
// still gets CPUs, and its monitor can join it. Before, the filled
// cpuset.mems was taken for a finished copy, and the join failed with
// ENOSPC ("No space left on device") when containers started at once.
func TestMonitorGroupHalfSeededCpuset(t *testing.T) {
	h := rootHost(t)
	hi, ok := h.hierarchy("cpuset")
	if !ok || hi.Version != 1 {
		testreq.Skip(t, "cpuset", "no v1 cpuset hierarchy on this host: cgroup2 cpusets need no seeding")
	}
	parent := uniqueParent(t)
	t.Cleanup(func() { cleanupParent(t, h, parent) })
	parents, err := OwnParents(parent)
	if err != nil {
		t.Fatal(err)
	}
	b, err := h.Base("/unused", parents)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.ensure(); err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(hi.OwnDir(), parent)
	monitors := filepath.Join(base, MonitorDir)
	if err := mkdir(monitors); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(filepath.Join(monitors, "cpuset.mems"), readOrFail(t, filepath.Join(base, "cpuset.mems"))); err != nil {
		t.Fatal(err)
	}
	mg := b.MonitorGroup("web1")
	if err := mg.Create(); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{monitors, filepath.Join(monitors, "web1")} {
		if cpus := readOrFail(t, filepath.Join(dir, "cpuset.cpus")); cpus == "" {
			t.Errorf("%s has no CPUs", dir)
		}
	}
	sleep := startSleep(t)
	if err := mg.AddProcess(sleep.pid); err != nil {
		t.Fatalf("the monitor joins its group: %v", err)
	}
	if err := mg.Leave(sleep.pid); err != nil {
		t.Fatal(err)
	}
	if err := mg.Destroy(); err != nil {
		t.Fatal(err)
	}
}
