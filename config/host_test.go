package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const testHostPath = "/etc/lodge/lodge.toml"

func parseTestHost(text string) (*Host, error) {
	return parseHost(sourceFile{path: testHostPath, text: text})
}

func TestDefaultHost(t *testing.T) {
	h := DefaultHost()
	if err := h.Validate(); err != nil {
		t.Fatalf("DefaultHost().Validate() = %v", err)
	}
	want := HostIDMap{First: 524288, Size: 65536, Count: 28664}
	if h.IDMap != want {
		t.Errorf("IDMap = %+v; want %+v", h.IDMap, want)
	}
	last := uint64(h.IDMap.First) + uint64(h.IDMap.Size)*uint64(h.IDMap.Count) - 1
	if last != 1879048191 {
		t.Errorf("last id = %d; want systemd's last container id 1879048191", last)
	}
	if h.Cgroup.Parent != "/lodge" || h.Cgroup.Name != "" || h.Version != 1 {
		t.Errorf("DefaultHost() = %+v", h)
	}
}

func TestLoadHostMissingFileIsDefault(t *testing.T) {
	h, err := LoadHost(filepath.Join(t.TempDir(), "lodge.toml"))
	if err != nil || !reflect.DeepEqual(h, DefaultHost()) {
		t.Errorf("LoadHost(missing) = %+v, %v; want DefaultHost()", h, err)
	}
}

func TestLoadHostFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lodge.toml")
	text := `version = 1
[idmap]
first = 1048576
[cgroup]
parent = "/lodge.slice"
[cgroup.parents]
"cpu,cpuacct" = "/user.slice/lodge"
memory = "/m/lodge"
[criu]
path = "/opt/criu/bin/criu"
[templates.debian]
release = "trixie"
[defaults]
"limits.pids" = "1024"
"limits.memory" = "1G"
"limits.swap" = "512M"
`
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := LoadHost(path)
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultHost()
	want.IDMap = HostIDMap{First: 1048576, Size: 65536, Count: 28656} // count follows first
	want.Cgroup = HostCgroup{Parent: "/lodge.slice", Parents: map[string]string{"cpu,cpuacct": "/user.slice/lodge", "memory": "/m/lodge"}}
	want.CRIU = HostCRIU{Path: "/opt/criu/bin/criu"}
	want.Templates = map[string]map[string]string{"debian": {"release": "trixie"}}
	want.Defaults = map[string]string{"limits.pids": "1024", "limits.memory": "1G", "limits.swap": "512M"}
	h.source = sourceFile{}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("LoadHost = %+v\nwant %+v", h, want)
	}
	if got := h.Cgroup.ParentOf("memory") + " " + h.Cgroup.ParentOf("pids"); got != "/m/lodge /lodge.slice" {
		t.Errorf("ParentOf(memory), ParentOf(pids) = %s", got)
	}
	c, err := h.DefaultContainer()
	if err != nil || c.Limits.Pids != 1024 || c.Limits.Memory != 1<<30 || c.Limits.Swap != 512<<20 {
		t.Errorf("DefaultContainer() = %+v, %v", c, err)
	}
}

func TestLoadHostErrors(t *testing.T) {
	tests := []struct {
		name, text, wantErr string
	}{
		{
			name:    "missing version",
			text:    "[cgroup]\nparent = \"/x\"\n",
			wantErr: testHostPath + ": no version key; add version = 1 at the top of the file",
		},
		{
			name:    "newer version",
			text:    "version = 2\n",
			wantErr: testHostPath + ":1: written by a newer lodge (version 2, this lodge understands up to 1)",
		},
		{
			name:    "unknown key",
			text:    "version = 1\n[idmap]\nfrist = 65536\n",
			wantErr: testHostPath + `:3: unknown key "idmap.frist" (did you mean "idmap.first"?)`,
		},
		{
			name:    "wrong type",
			text:    "version = 1\n[idmap]\nfirst = \"65536\"\n",
			wantErr: testHostPath + `:3: idmap.first: incompatible types: TOML value has type string; destination has type integer`,
		},
		{
			name:    "id out of range for uint32",
			text:    "version = 1\n[idmap]\nfirst = -1\n",
			wantErr: testHostPath + `:3: idmap.first: -1 is out of range for uint32`,
		},
		{
			name:    "first overlaps host ids",
			text:    "version = 1\n[idmap]\nfirst = 1000\n",
			wantErr: testHostPath + ":3: idmap.first: 1000 would overlap the host's own ids 0..65535; use at least 65536, e.g. the default 524288",
		},
		{
			name:    "size other than 65536",
			text:    "version = 1\n[idmap]\nsize = 1000\ncount = 1\n",
			wantErr: testHostPath + ":3: idmap.size: 1000 is not supported; use 65536, because root filesystems keep file ids 0..65535 and each container needs all of them",
		},
		{
			name:    "ranges past the last id",
			text:    "version = 1\n[idmap]\nfirst = 4294901760\ncount = 1\n",
			wantErr: testHostPath + ":4: idmap.count: 1 ranges from 4294901760 end at id 4294967295, past the last usable id 4294967294; lower idmap.count or idmap.first",
		},
		{
			name:    "first beyond systemd's range leaves no default count",
			text:    "version = 1\n[idmap]\nfirst = 2000000000\n",
			wantErr: testHostPath + ":2: idmap.count: is 0, so no container can start; set idmap.count, or lower idmap.first to leave room below 1879048192",
		},
		{
			name: "the replaced cgroup.name",
			text: "version = 1\n[cgroup]\nname = \"lodge-test\"\n",
			wantErr: testHostPath + `:3: cgroup.name: was replaced by cgroup.parent, an absolute cgroup path that is the same whichever cgroup lodge runs from; ` +
				`write parent = "/lodge-test" instead of name = "lodge-test" under [cgroup] (containers then live in /lodge-test/NAME on every hierarchy)`,
		},
		{
			name:    "relative criu path",
			text:    "version = 1\n[criu]\npath = \"criu\"\n",
			wantErr: testHostPath + `:3: criu.path: "criu" is not an absolute path; use one like /usr/local/lib/lodge/criu/criu, or leave it out to use the CRIU make deps installs`,
		},
		{
			name:    "relative cgroup parent",
			text:    "version = 1\n[cgroup]\nparent = \"lodge\"\n",
			wantErr: testHostPath + `:3: cgroup.parent: "lodge" is not an absolute cgroup path; write "/lodge"`,
		},
		{
			name: "bad per-hierarchy parents, each at its line",
			text: "version = 1\n[cgroup.parents]\nmemory = \"/a/../b\"\n\"cpu,cpuacct\" = \"/a//b/\"\n\"bad key\" = \"/x\"\nunified = \"/\"\n",
			wantErr: testHostPath + `:3: cgroup.parents."memory": "/a/../b" contains ".."; write the cgroup path without it` + "\n" +
				testHostPath + `:4: cgroup.parents."cpu,cpuacct": "/a//b/" is not a clean path; write "/a/b"` + "\n" +
				testHostPath + `:5: cgroup.parents."bad key": "bad key" is not a cgroup hierarchy key; use one as /proc/self/cgroup names it: "memory", "cpu,cpuacct", "systemd" (name=systemd) or "unified" (cgroup2)` + "\n" +
				testHostPath + `:6: cgroup.parents."unified": is the hierarchy's root, which belongs to the whole host; use a cgroup of lodge's own like "/lodge"`,
		},
		{
			name: "bad defaults, each at its line",
			text: "version = 1\n[defaults]\n\"limits.pids\" = \"many\"\n\"source.image\" = \"x\"\n\"limits.memroy\" = \"1G\"\n",
			wantErr: testHostPath + `:3: defaults."limits.pids": "many" is not a whole number; use e.g. 1024` + "\n" +
				testHostPath + `:4: defaults."source.image": source.image is read-only: it records how the container was made` + "\n" +
				testHostPath + `:5: defaults."limits.memroy": unknown key "limits.memroy" (did you mean "limits.memory"?); settable keys: ` + strings.Join(settableKeyNames(), ", "),
		},
		{
			name:    "defaults that fail validation",
			text:    "version = 1\n[defaults]\n\"limits.cpu\" = \"-2\"\n",
			wantErr: testHostPath + `:3: defaults."limits.cpu": -2 is negative; use a number of CPUs like 1.5, or 0 for no limit`,
		},
		{
			name:    "defaults that only fail together",
			text:    "version = 1\n[defaults]\n\"limits.swap\" = \"1G\"\n",
			wantErr: testHostPath + `:3: defaults."limits.swap": 1GiB is swap on top of limits.memory, which is not set; set limits.memory too, or set limits.swap to 0`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseTestHost(tt.text)
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("error:\n%v\nwant:\n%s", err, tt.wantErr)
			}
		})
	}
}

func TestCgroupParentPaths(t *testing.T) {
	for p, valid := range map[string]bool{
		"/lodge": true, "/lodge.slice": true, "/process_api/abc/lodge-test-1": true, "/a b": true,
		"": false, "/": false, "lodge": false, "/lodge/": false, "/a/./b": false, "/a/../b": false, "/..": false, "/a\nb": false,
	} {
		h := DefaultHost()
		h.Cgroup.Parent = p
		if err := h.checkCgroupParent(); (err == nil) != valid {
			t.Errorf("cgroup.parent %q: error = %v; want valid = %v", p, err, valid)
		}
	}
}

func TestCheckCgroupKeys(t *testing.T) {
	h, err := parseTestHost("version = 1\n[cgroup.parents]\nmemory = \"/m\"\n\"cpuacct,cpu\" = \"/c\"\n")
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{"cpu,cpuacct", "memory", "systemd", "unified"}
	want := testHostPath + `:4: cgroup.parents."cpuacct,cpu": "cpuacct,cpu" names no cgroup hierarchy of this host; its hierarchies are cpu,cpuacct, memory, systemd, unified`
	if err := h.CheckCgroupKeys(keys); err == nil || err.Error() != want {
		t.Errorf("CheckCgroupKeys = %v\nwant %s", err, want)
	}
	if err := h.CheckCgroupKeys(append(keys, "cpuacct,cpu")); err != nil {
		t.Errorf("CheckCgroupKeys with the key = %v", err)
	}
	h, _ = parseTestHost("version = 1\n[cgroup.parents]\nmemroy = \"/m\"\n")
	if err := h.CheckCgroupKeys(keys); err == nil || !strings.Contains(err.Error(), `(did you mean "memory"?)`) {
		t.Errorf("CheckCgroupKeys(memroy) = %v; want a suggestion", err)
	}
}

func TestCgroupTOML(t *testing.T) {
	text := "version = 1\n" + CgroupTOML("/base", map[string]string{"cpu,cpuacct": "/own/x", "unified": "/y"})
	h, err := parseTestHost(text)
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if h.Cgroup.ParentOf("cpu,cpuacct") != "/own/x" || h.Cgroup.ParentOf("unified") != "/y" || h.Cgroup.ParentOf("memory") != "/base" {
		t.Errorf("parsed %+v from\n%s", h.Cgroup, text)
	}
}

func TestHostConfigPath(t *testing.T) {
	t.Setenv("LODGE_HOST_CONFIG", "")
	if got := HostConfigPath(); got != DefaultHostConfigPath {
		t.Errorf("HostConfigPath() = %q; want %q", got, DefaultHostConfigPath)
	}
	t.Setenv("LODGE_HOST_CONFIG", "/tmp/x.toml")
	if got := HostConfigPath(); got != "/tmp/x.toml" {
		t.Errorf("HostConfigPath() = %q; want /tmp/x.toml", got)
	}
}
