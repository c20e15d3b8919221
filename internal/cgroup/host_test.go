package cgroup

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// sampleHost assembles a Host from testdata/NAME.mountinfo and NAME.cgroup,
// with v2Ctrls as every cgroup2 directory's cgroup.controllers.
func sampleHost(t *testing.T, name string, v2Ctrls ...string) *Host {
	t.Helper()
	mounts, err := ParseMountinfo(openTestdata(t, name+".mountinfo"))
	if err != nil {
		t.Fatal(err)
	}
	self, err := ParseProcCgroup(openTestdata(t, name+".cgroup"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := assembleHost(mounts, self, func(string) ([]string, error) { return v2Ctrls, nil })
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func openTestdata(t *testing.T, name string) *os.File {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestParseMountinfo(t *testing.T) {
	mounts, err := ParseMountinfo(openTestdata(t, "unified.mountinfo"))
	if err != nil {
		t.Fatal(err)
	}
	if len(mounts) != 5 {
		t.Fatalf("%d mounts", len(mounts))
	}
	want := MountInfo{ID: 27, Parent: 23, Root: "/", Mountpoint: "/sys/fs/cgroup", FSType: "cgroup2", Source: "cgroup2",
		SuperOptions: []string{"rw", "nsdelegate", "memory_recursiveprot"}}
	if !reflect.DeepEqual(mounts[2], want) {
		t.Errorf("cgroup2 line = %+v", mounts[2])
	}
	if got := mounts[4].Mountpoint; got != "/srv/my dir" {
		t.Errorf("escaped mountpoint = %q", got)
	}
	// Optional fields (shared:N master:N) of any number.
	m, err := ParseMountinfo(strings.NewReader("36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 shared:2 - ext3 /dev/root rw,errors=continue\n"))
	if err != nil || m[0].FSType != "ext3" || m[0].Root != "/mnt1" || m[0].Source != "/dev/root" {
		t.Errorf("optional fields: %+v, %v", m, err)
	}
	for _, bad := range []string{"1 2 3\n", "x 1 0:1 / / rw - ext4 /dev/x rw\n", "1 2 0:1 / / rw shared:1 ext4 /dev/x rw\n"} {
		if _, err := ParseMountinfo(strings.NewReader(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestUnescapeOctal(t *testing.T) {
	for in, want := range map[string]string{
		`/a\040b`:    "/a b",
		`/a\011b`:    "/a\tb",
		`/a\134b`:    `/a\b`,
		`/a\04`:      `/a\04`,
		`/plain`:     "/plain",
		`/x\989`:     `/x\989`,
		`\040\040\n`: `  \n`,
	} {
		if got := unescapeOctal(in); got != want {
			t.Errorf("unescapeOctal(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseProcCgroup(t *testing.T) {
	got, err := ParseProcCgroup(openTestdata(t, "hybrid.cgroup"))
	if err != nil {
		t.Fatal(err)
	}
	want := []ProcCgroup{
		{ID: 12, Controllers: []string{"pids"}, Path: "/system.slice/lodge.service"},
		{ID: 11, Controllers: []string{"cpuset"}, Path: "/"},
		{ID: 10, Controllers: []string{"freezer"}, Path: "/"},
		{ID: 9, Controllers: []string{"memory"}, Path: "/system.slice/lodge.service"},
		{ID: 8, Controllers: []string{"net_cls", "net_prio"}, Path: "/"},
		{ID: 4, Controllers: []string{"cpu", "cpuacct"}, Path: "/system.slice/lodge.service"},
		{ID: 1, Name: "systemd", Path: "/system.slice/lodge.service"},
		{ID: 0, Path: "/system.slice/lodge.service"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v", got)
	}
	if !got[7].Unified() || got[6].Unified() {
		t.Error("Unified() wrong")
	}
	// A path may contain colons.
	p, err := ParseProcCgroup(strings.NewReader("0::/a:b\n"))
	if err != nil || p[0].Path != "/a:b" {
		t.Errorf("colon path: %+v, %v", p, err)
	}
	for _, bad := range []string{"0:/\n", "x::/\n", "3::/\n", "-1::/\n"} {
		if _, err := ParseProcCgroup(strings.NewReader(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// hostSummary renders a host compactly: mode, then key=version:ownDir:controllers.
func hostSummary(h *Host) []string {
	out := []string{h.Mode.String()}
	for _, hi := range h.Hierarchies {
		out = append(out, hi.Key()+"="+string(rune('0'+hi.Version))+":"+hi.OwnDir()+":"+strings.Join(hi.Controllers, ","))
	}
	return out
}

func TestAssembleHost(t *testing.T) {
	for _, c := range []struct {
		name    string
		v2Ctrls []string
		want    []string
	}{
		{"unified", []string{"cpuset", "cpu", "io", "memory", "pids"}, []string{
			"unified",
			"unified=2:/sys/fs/cgroup/system.slice/lodge.service:cpuset,cpu,io,memory,pids",
		}},
		{"hybrid", nil, []string{
			"hybrid",
			"cpu,cpuacct=1:/sys/fs/cgroup/cpu,cpuacct/system.slice/lodge.service:cpu,cpuacct",
			"cpuset=1:/sys/fs/cgroup/cpuset:cpuset",
			"freezer=1:/sys/fs/cgroup/freezer:freezer",
			"memory=1:/sys/fs/cgroup/memory/system.slice/lodge.service:memory",
			"net_cls,net_prio=1:/sys/fs/cgroup/net_cls,net_prio:net_cls,net_prio",
			"pids=1:/sys/fs/cgroup/pids/system.slice/lodge.service:pids",
			"systemd=1:/sys/fs/cgroup/systemd/system.slice/lodge.service:",
			"unified=2:/sys/fs/cgroup/unified/system.slice/lodge.service:",
		}},
		{"legacy", nil, []string{
			"legacy",
			"cpu,cpuacct=1:/sys/fs/cgroup/cpu,cpuacct/system.slice/lodge.service:cpu,cpuacct",
			"cpuset=1:/sys/fs/cgroup/cpuset:cpuset",
			"devices=1:/sys/fs/cgroup/devices/system.slice/lodge.service:devices",
			"freezer=1:/sys/fs/cgroup/freezer:freezer",
			"memory=1:/sys/fs/cgroup/memory/system.slice/lodge.service:memory",
			"pids=1:/sys/fs/cgroup/pids/system.slice/lodge.service:pids",
			"systemd=1:/sys/fs/cgroup/systemd/system.slice/lodge.service:",
		}},
		{"thishost", []string{"hugetlb"}, []string{
			"hybrid",
			"blkio=1:/sys/fs/cgroup/blkio:blkio",
			"cpu=1:/sys/fs/cgroup/cpu:cpu",
			"cpuacct=1:/sys/fs/cgroup/cpuacct:cpuacct",
			"cpuset=1:/sys/fs/cgroup/cpuset:cpuset",
			"devices=1:/sys/fs/cgroup/devices:devices",
			"freezer=1:/sys/fs/cgroup/freezer:freezer",
			"memory=1:/sys/fs/cgroup/memory/process_api/0123abcd:memory",
			"pids=1:/sys/fs/cgroup/pids:pids",
			"systemd=1:/sys/fs/cgroup/systemd:",
			"unified=2:/sys/fs/cgroup/unified:hugetlb",
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := sampleHost(t, c.name, c.v2Ctrls...)
			if got := hostSummary(h); !reflect.DeepEqual(got, c.want) {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"))
			}
		})
	}
}

func TestAssembleHostEdgeCases(t *testing.T) {
	noCtrls := func(string) ([]string, error) { return nil, nil }
	// No cgroup mount at all.
	if _, err := assembleHost(nil, []ProcCgroup{{ID: 0, Path: "/"}}, noCtrls); err == nil {
		t.Error("no mounts: no error")
	}
	// A container without a cgroup namespace: the hierarchy's root is mounted
	// at /sys/fs/cgroup/memory but is /docker/abc in the hierarchy.
	mounts := []MountInfo{{Root: "/docker/abc", Mountpoint: "/sys/fs/cgroup/memory", FSType: "cgroup", SuperOptions: []string{"rw", "memory"}}}
	h, err := assembleHost(mounts, []ProcCgroup{{ID: 4, Controllers: []string{"memory"}, Path: "/docker/abc/sub"}}, noCtrls)
	if err != nil {
		t.Fatal(err)
	}
	if got := h.Hierarchies[0].OwnDir(); got != "/sys/fs/cgroup/memory/sub" {
		t.Errorf("OwnDir = %q", got)
	}
	// A cgroup outside the mounted subtree is not reachable.
	h, err = assembleHost(mounts, []ProcCgroup{{ID: 4, Controllers: []string{"memory"}, Path: "/other"}}, noCtrls)
	if err == nil {
		t.Errorf("unreachable cgroup: got %+v", h)
	}
	// Outside the cgroup namespace.
	if _, err := assembleHost(mounts, []ProcCgroup{{ID: 0, Path: "/../x"}}, noCtrls); err == nil {
		t.Error("path outside the namespace: no error")
	}
	// A v1 named hierarchy next to a pure cgroup2 layout is left out.
	mounts = []MountInfo{
		{Root: "/", Mountpoint: "/sys/fs/cgroup", FSType: "cgroup2"},
		{Root: "/", Mountpoint: "/run/systemd-v1", FSType: "cgroup", SuperOptions: []string{"rw", "name=systemd"}},
	}
	h, err = assembleHost(mounts, []ProcCgroup{{ID: 1, Name: "systemd", Path: "/"}, {ID: 0, Path: "/"}}, noCtrls)
	if err != nil || h.Mode != Unified || len(h.Hierarchies) != 1 {
		t.Errorf("named v1 beside cgroup2: %+v, %v", h, err)
	}
	// Mounts under /sys/fs/cgroup win over other mounts of the same hierarchy.
	mounts = []MountInfo{
		{Root: "/", Mountpoint: "/mnt/elsewhere", FSType: "cgroup", SuperOptions: []string{"rw", "pids"}},
		{Root: "/", Mountpoint: "/sys/fs/cgroup/pids", FSType: "cgroup", SuperOptions: []string{"rw", "pids"}},
	}
	h, err = assembleHost(mounts, []ProcCgroup{{ID: 3, Controllers: []string{"pids"}, Path: "/"}}, noCtrls)
	if err != nil || h.Hierarchies[0].Mountpoint != "/sys/fs/cgroup/pids" || h.Mode != Legacy {
		t.Errorf("preferred mount: %+v, %v", h, err)
	}
}

func TestHierarchyDir(t *testing.T) {
	h := Hierarchy{Mountpoint: "/sys/fs/cgroup/memory", Root: "/"}
	if d, ok := h.Dir("/a/b"); !ok || d != "/sys/fs/cgroup/memory/a/b" {
		t.Errorf("Dir = %q, %v", d, ok)
	}
	h.Root = "/a"
	if d, ok := h.Dir("/a"); !ok || d != "/sys/fs/cgroup/memory" {
		t.Errorf("Dir(root) = %q, %v", d, ok)
	}
	if _, ok := h.Dir("/ab"); ok {
		t.Error("/ab is not below /a")
	}
}

func TestInsideMounts(t *testing.T) {
	for _, c := range []struct {
		name string
		want []Mount
	}{
		{"unified", []Mount{{Target: "", FSType: "cgroup2"}}},
		{"hybrid", []Mount{
			{Target: "cpu,cpuacct", FSType: "cgroup", Data: "cpu,cpuacct", Symlinks: []string{"cpu", "cpuacct"}},
			{Target: "cpuset", FSType: "cgroup", Data: "cpuset"},
			{Target: "freezer", FSType: "cgroup", Data: "freezer"},
			{Target: "memory", FSType: "cgroup", Data: "memory"},
			{Target: "net_cls,net_prio", FSType: "cgroup", Data: "net_cls,net_prio", Symlinks: []string{"net_cls", "net_prio"}},
			{Target: "pids", FSType: "cgroup", Data: "pids"},
			{Target: "systemd", FSType: "cgroup", Data: "none,name=systemd"},
			{Target: "unified", FSType: "cgroup2"},
		}},
		{"legacy", []Mount{
			{Target: "cpu,cpuacct", FSType: "cgroup", Data: "cpu,cpuacct", Symlinks: []string{"cpu", "cpuacct"}},
			{Target: "cpuset", FSType: "cgroup", Data: "cpuset"},
			{Target: "devices", FSType: "cgroup", Data: "devices"},
			{Target: "freezer", FSType: "cgroup", Data: "freezer"},
			{Target: "memory", FSType: "cgroup", Data: "memory"},
			{Target: "pids", FSType: "cgroup", Data: "pids"},
			{Target: "systemd", FSType: "cgroup", Data: "none,name=systemd"},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := sampleHost(t, c.name, "memory", "pids")
			g := h.ownGroup("lodge", "web1")
			if got := g.InsideMounts(); !reflect.DeepEqual(got, c.want) {
				t.Errorf("got  %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestGroupPaths(t *testing.T) {
	h := sampleHost(t, "hybrid")
	g := h.ownGroup("lodge", "web1")
	p := g.Paths()
	for key, want := range map[string]string{
		"memory":      "/sys/fs/cgroup/memory/system.slice/lodge.service/lodge/web1",
		"cpu,cpuacct": "/sys/fs/cgroup/cpu,cpuacct/system.slice/lodge.service/lodge/web1",
		"cpuset":      "/sys/fs/cgroup/cpuset/lodge/web1",
		"systemd":     "/sys/fs/cgroup/systemd/system.slice/lodge.service/lodge/web1",
		"unified":     "/sys/fs/cgroup/unified/system.slice/lodge.service/lodge/web1",
	} {
		if p[key] != want {
			t.Errorf("Paths[%s] = %q, want %q", key, p[key], want)
		}
	}
	if len(p) != 8 {
		t.Errorf("%d paths", len(p))
	}
	for _, bad := range [][2]string{{"lodge", ""}, {"lodge", ".."}, {"lodge", "a/b"}, {"", "x"}, {"..", "x"}} {
		g := h.ownGroup(bad[0], bad[1])
		if err := g.Create(); err == nil {
			t.Errorf("Group(%q, %q).Create: no error", bad[0], bad[1])
		}
		if err := g.AddProcess(1); err == nil {
			t.Errorf("Group(%q, %q).AddProcess: no error", bad[0], bad[1])
		}
		if len(g.Paths()) != 0 {
			t.Errorf("Group(%q, %q) has paths", bad[0], bad[1])
		}
	}
}

func TestProcsFiles(t *testing.T) {
	h := sampleHost(t, "hybrid")
	// The container's init as the host sees it.
	initCgroup := `12:pids:/system.slice/lodge.service/lodge/web1
11:cpuset:/lodge/web1
10:freezer:/lodge/web1
9:memory:/system.slice/lodge.service/lodge/web1
8:net_cls,net_prio:/lodge/web1
4:cpu,cpuacct:/system.slice/lodge.service/lodge/web1
1:name=systemd:/system.slice/lodge.service/lodge/web1/init.scope
0::/system.slice/lodge.service/lodge/web1/init.scope
`
	cgs, err := ParseProcCgroup(strings.NewReader(initCgroup))
	if err != nil {
		t.Fatal(err)
	}
	got, err := h.placement(cgs)
	if err != nil {
		t.Fatal(err)
	}
	want := Placement{
		Tasks: []string{
			"/sys/fs/cgroup/cpu,cpuacct/system.slice/lodge.service/lodge/web1/tasks",
			"/sys/fs/cgroup/cpuset/lodge/web1/tasks",
			"/sys/fs/cgroup/freezer/lodge/web1/tasks",
			"/sys/fs/cgroup/memory/system.slice/lodge.service/lodge/web1/tasks",
			"/sys/fs/cgroup/net_cls,net_prio/lodge/web1/tasks",
			"/sys/fs/cgroup/pids/system.slice/lodge.service/lodge/web1/tasks",
			"/sys/fs/cgroup/systemd/system.slice/lodge.service/lodge/web1/init.scope/tasks",
		},
		Unified: "/sys/fs/cgroup/unified/system.slice/lodge.service/lodge/web1/init.scope",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v", got)
	}
	// A process missing a hierarchy is an error.
	if _, err := h.placement(cgs[:3]); err == nil {
		t.Error("missing hierarchies: no error")
	}
	// Pure v2.
	u := sampleHost(t, "unified", "memory")
	got, err = u.placement([]ProcCgroup{{ID: 0, Path: "/system.slice/lodge.service/lodge/web1/init.scope"}})
	if err != nil || len(got.Tasks) != 0 || got.Unified != "/sys/fs/cgroup/system.slice/lodge.service/lodge/web1/init.scope" {
		t.Errorf("unified: %+v, %v", got, err)
	}
}

func TestHostControllers(t *testing.T) {
	h := sampleHost(t, "thishost", "hugetlb")
	want := "blkio cpu cpuacct cpuset devices freezer hugetlb memory pids"
	if got := strings.Join(h.Controllers(), " "); got != want {
		t.Errorf("Controllers = %q", got)
	}
	if _, ok := h.Unified(); !ok {
		t.Error("no unified hierarchy")
	}
}

func TestModeString(t *testing.T) {
	if Unified.String() != "unified" || Hybrid.String() != "hybrid" || Legacy.String() != "legacy" || Mode(9).String() != "Mode(9)" {
		t.Error("Mode.String")
	}
}

func TestApplyUnsupported(t *testing.T) {
	h := sampleHost(t, "legacy")
	// A host without the pids hierarchy.
	h.Hierarchies = slices.DeleteFunc(h.Hierarchies, func(hi Hierarchy) bool { return hi.Has("pids") })
	g := h.ownGroup("lodge", "web1")
	err := g.Apply(Limits{Pids: 10})
	if !errors.Is(err, ErrUnsupported) {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{KeyPids, "pids controller", "available: cpu cpuacct cpuset devices freezer memory"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	t.Log(err)
}

func TestOpenFromPaths(t *testing.T) {
	paths := map[string]string{
		"memory":  "/sys/fs/cgroup/memory/some/where/lodge/web1",
		"systemd": "/sys/fs/cgroup/systemd/lodge/web1",
		"unified": "/sys/fs/cgroup/unified/lodge/web1",
	}
	g := Open(paths)
	if g.Name() != "web1" || !reflect.DeepEqual(g.Paths(), paths) {
		t.Fatalf("Open: name %q, paths %v", g.Name(), g.Paths())
	}
	if d, ok := g.dirFor("memory"); !ok || d.parent != "/sys/fs/cgroup/memory/some/where/lodge" {
		t.Errorf("memory dir %+v", d)
	}
	if d, ok := g.unified(); !ok || d.h.Version != 2 {
		t.Errorf("unified dir %+v", d)
	}
	if inferHierarchy("cpu,cpuacct").Key() != "cpu,cpuacct" || inferHierarchy("unified").Version != 2 {
		t.Error("inferHierarchy")
	}
	if e := Open(nil); e.Exists() || len(e.Paths()) != 0 {
		t.Error("Open(nil)")
	}
}
