package config

import (
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"lodge/internal/testreq"
)

// TestEveryFieldHasAKey keeps the registry complete: every leaf key of the
// file format except version must be a registry key, and the other way round.
func TestEveryFieldHasAKey(t *testing.T) {
	var leaves []string
	containerType := reflect.TypeFor[Container]()
	for _, name := range tomlKeys(containerType) {
		if name != "version" && !isTableKey(containerType, name) {
			leaves = append(leaves, name)
		}
	}
	var registered []string
	for _, key := range Keys() {
		// network.N.KEY is the command-line spelling of [[network]] KEY.
		// proxy.NAME is the command-line spelling of a [proxy] entry.
		name := strings.Replace(key.Name, "network.N.", "network.", 1)
		registered = append(registered, strings.TrimSuffix(name, ".NAME"))
	}
	slices.Sort(leaves)
	slices.Sort(registered)
	if !slices.Equal(leaves, registered) {
		t.Errorf("file keys %q\nregistry  %q", leaves, registered)
	}
}

// isTableKey reports whether the dotted name is a table of t.
func isTableKey(t reflect.Type, name string) bool {
	for _, element := range strings.Split(name, ".") {
		field, ok := fieldByTag(elemTable(t), element)
		if !ok {
			return false
		}
		t = field.Type
	}
	return isTable(elemTable(t))
}

func TestKeysAreDocumented(t *testing.T) {
	keys := Keys()
	if !slices.IsSortedFunc(keys, func(a, b Key) int { return strings.Compare(a.Name, b.Name) }) {
		t.Error("Keys() is not sorted by name")
	}
	for _, key := range keys {
		if key.Doc == "" || key.Example == "" || key.get == nil {
			t.Errorf("%s: missing Doc, Example or get", key.Name)
		}
		if key.ReadOnly != strings.HasPrefix(key.Name, "source.") {
			t.Errorf("%s: ReadOnly = %v; only source.* keys are read-only", key.Name, key.ReadOnly)
		}
		if !key.ReadOnly && !key.nic && (key.set == nil || key.check == nil) {
			t.Errorf("%s: settable key without set or check", key.Name)
		}
	}
}

func TestExamplesAreValid(t *testing.T) {
	for _, key := range Keys() {
		if key.ReadOnly {
			continue
		}
		c := Default()
		c.Limits.Memory = 1 << 30 // limits.swap needs it
		name := key.Name
		if key.nic {
			name = strings.Replace(name, ".N.", ".0.", 1)
			if name == "network.0.parent" {
				c.Networks = []NIC{{Type: NICMacvlan}}
			}
		}
		if err := c.Set(name, key.Example); err != nil {
			t.Errorf("Set(%s, example %q): %v", key.Name, key.Example, err)
		}
	}
}

func TestSetGet(t *testing.T) {
	tests := []struct {
		key, value, want string
	}{
		{"limits.memory", "1.5G", "1.5GiB"},
		{"limits.memory", "1073741824", "1GiB"},
		{"limits.cpu", "1.5", "1.5"},
		{"limits.cpu", " 2 ", "2"},
		{"limits.cpuset", "0-1", "0-1"},
		{"limits.pids", "1024", "1024"},
		{"limits.disk", "200MiB", "200MiB"},
		{"limits.disk", "", "0"},
		{"limits.disk", "0", "0"},
		{"init.command", `/bin/sh -c "exec /sbin/init"`, `/bin/sh -c 'exec /sbin/init'`},
		{"init.stop_signal", "SIGRTMIN+3", "SIGRTMIN+3"},
		{"init.stop_timeout", "90s", "1m30s"},
		{"rootfs.shift", "chown", "chown"},
	}
	for _, tt := range tests {
		c := Default()
		if err := c.Set(tt.key, tt.value); err != nil {
			t.Errorf("Set(%s, %q): %v", tt.key, tt.value, err)
			continue
		}
		if got, err := c.Get(tt.key); err != nil || got != tt.want {
			t.Errorf("after Set(%s, %q), Get = %q, %v; want %q", tt.key, tt.value, got, err, tt.want)
		}
	}
}

func TestSetEmptyResetsToDefault(t *testing.T) {
	for _, key := range Keys() {
		if key.ReadOnly || key.nic { // NIC keys: TestNICKeys
			continue
		}
		c := Default()
		c.Limits.Memory = 1 << 30
		if err := c.Set(key.Name, key.Example); err != nil {
			t.Fatalf("Set(%s, %q): %v", key.Name, key.Example, err)
		}
		if key.Name == "limits.memory" {
			c.Limits.Swap = 0 // else resetting memory would leave swap without it
		}
		if err := c.Set(key.Name, ""); err != nil {
			t.Errorf("Set(%s, \"\"): %v", key.Name, err)
		}
		got, _ := c.Get(key.Name)
		if want := key.Default(); got != want {
			t.Errorf("after reset, Get(%s) = %q; want default %q", key.Name, got, want)
		}
	}
}

func TestSetErrors(t *testing.T) {
	tests := []struct {
		key, value, wantErr string
	}{
		{"limits.memory", "lots", `limits.memory: "lots" is not a size; ` + sizeHint},
		{"limits.cpu", "abc", `limits.cpu: "abc" is not a number; use e.g. 1.5`},
		{"limits.cpu", "-1", "limits.cpu: -1 is negative; use a number of CPUs like 1.5, or 0 for no limit"},
		{"limits.pids", "1.5", `limits.pids: "1.5" is not a whole number; use e.g. 1024`},
		{"limits.swap", "1G", "limits.swap: 1GiB is swap on top of limits.memory, which is not set; set limits.memory too, or set limits.swap to 0"},
		{"limits.cpuset", "0-x", `limits.cpuset: "0-x" is not a CPU list ("x" is not a CPU number); use e.g. "0-1" or "0,2"`},
		{"init.command", `/bin/sh "`, `init.command: "/bin/sh \"" cannot be split into words: unterminated " quote`},
		{"init.command", "sbin/init", `init.command: "sbin/init" is not an absolute path; start with the full path of the init program, e.g. /sbin/init`},
		{"init.stop_signal", "SIGFOO", `init.stop_signal: "SIGFOO" is not a signal; use a name like SIGTERM, SIGPWR, SIGRTMIN+3 or a number`},
		{"init.stop_timeout", "-5s", `init.stop_timeout: "-5s" is negative; ` + durationHint},
		{"rootfs.shift", "x", `rootfs.shift: "x" must be one of auto, idmap, chown`},
		{"source.template", "debian", "source.template is read-only: it records how the container was made"},
		{"limits.memroy", "1G", `unknown key "limits.memroy" (did you mean "limits.memory"?); settable keys: boot.after, boot.autostart, boot.host_shutdown, boot.ready_command, boot.ready_timeout, init.command, init.stop_signal, init.stop_timeout, limits.cpu, limits.cpuset, limits.disk, limits.memory, limits.network.egress, limits.network.ingress, limits.pids, limits.swap, lxcfs.cpu_quota_view, lxcfs.enabled, network.N.hwaddr, network.N.ipv4, network.N.ipv6, network.N.mtu, network.N.name, network.N.network, network.N.parent, network.N.type, proxy.NAME, rootfs.shift, security.nesting, security.syscalls.allow, security.syscalls.deny`},
	}
	for _, tt := range tests {
		c := Default()
		err := c.Set(tt.key, tt.value)
		if err == nil || err.Error() != tt.wantErr {
			t.Errorf("Set(%s, %q) = %v\nwant %s", tt.key, tt.value, err, tt.wantErr)
		}
		if !reflect.DeepEqual(c, Default()) {
			t.Errorf("failed Set(%s, %q) changed the container: %+v", tt.key, tt.value, c)
		}
	}
}

func TestGetReadOnly(t *testing.T) {
	c := Default()
	c.Source = Source{
		Template: "debian",
		Image:    "base",
		Options:  map[string]string{"release": "bookworm", "arch": "amd64", "note": "two words"},
		Created:  time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
	}
	want := map[string]string{
		"source.template": "debian",
		"source.image":    "base",
		"source.options":  "arch=amd64 'note=two words' release=bookworm",
		"source.created":  "2025-01-02T03:04:05Z",
	}
	for key, value := range want {
		if got, err := c.Get(key); err != nil || got != value {
			t.Errorf("Get(%s) = %q, %v; want %q", key, got, err, value)
		}
	}
	if _, err := c.Get("nope"); err == nil || !strings.HasPrefix(err.Error(), `unknown key "nope"; settable keys:`) {
		t.Errorf("Get(nope) error = %v", err)
	}
}

func TestLookupKey(t *testing.T) {
	key, err := LookupKey("limits.memory")
	if err != nil || key.Name != "limits.memory" {
		t.Errorf("LookupKey(limits.memory) = %+v, %v", key, err)
	}
	_, err = LookupKey("memory")
	if err == nil || !strings.HasPrefix(err.Error(), `unknown key "memory" (did you mean "limits.memory"?); settable keys: boot.after,`) {
		t.Errorf("LookupKey(memory) error = %v", err)
	}
	if strings.Contains(err.Error(), "source.") {
		t.Errorf("LookupKey error lists read-only keys as settable: %v", err)
	}
}

func TestParseAssignment(t *testing.T) {
	good := []struct{ in, key, value string }{
		{"limits.memory=1G", "limits.memory", "1G"},
		{" limits.memory = 1G ", "limits.memory", "1G"},
		{"limits.memory=", "limits.memory", ""},
		{"init.command=/bin/sh -c 'a=b'", "init.command", "/bin/sh -c 'a=b'"},
	}
	for _, tt := range good {
		key, value, err := ParseAssignment(tt.in)
		if err != nil || key != tt.key || value != tt.value {
			t.Errorf("ParseAssignment(%q) = %q, %q, %v; want %q, %q", tt.in, key, value, err, tt.key, tt.value)
		}
	}
	bad := map[string]string{
		"limits.memory": `"limits.memory" is not key=value; write e.g. limits.memory=512MiB`,
		"=1G":           `"=1G" has no key before '='; write e.g. limits.memory=512MiB`,
		" =1G":          `" =1G" has no key before '='`,
	}
	for in, wantErr := range bad {
		_, _, err := ParseAssignment(in)
		if err == nil || !strings.HasPrefix(err.Error(), wantErr) {
			t.Errorf("ParseAssignment(%q) error = %v; want %q", in, err, wantErr)
		}
	}
}

func TestKeysMarkdown(t *testing.T) {
	markdown := KeysMarkdown()
	lines := strings.Split(strings.TrimSuffix(markdown, "\n"), "\n")
	if len(lines) != len(Keys())+2 {
		t.Fatalf("got %d lines; want a header, a rule and one row per key:\n%s", len(lines), markdown)
	}
	for i, key := range Keys() {
		if !strings.HasPrefix(lines[i+2], "| `"+key.Name+"` |") {
			t.Errorf("row %d = %q; want key %s", i, lines[i+2], key.Name)
		}
	}
	wantRow := "| `limits.memory` | `0` | `512MiB` | Memory limit"
	if !strings.Contains(markdown, wantRow) {
		t.Errorf("markdown lacks %q:\n%s", wantRow, markdown)
	}
	if !strings.Contains(markdown, "| `source.image` | (empty) | `debian-base` | Read-only. ") {
		t.Errorf("markdown does not mark read-only keys:\n%s", markdown)
	}
	if got := markdownCell("a|b"); got != `a\|b` {
		t.Errorf("markdownCell(a|b) = %q", got)
	}
}

func TestSyscallNames(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		testreq.Skip(t, "amd64", "the messages name x86_64's system calls")
	}
	c := Default()
	err := c.Set("security.syscalls.deny", "mknodat kexec_lod")
	if want := `security.syscalls.deny: "kexec_lod" is not a system call on x86_64; did you mean kexec_load?`; err == nil || err.Error() != want {
		t.Errorf("typo: %v\nwant %s", err, want)
	}
	if err := c.Set("security.syscalls.allow", "perf_event_open nosuchcallanywhere"); err == nil || !strings.Contains(err.Error(), `"nosuchcallanywhere" is not a system call on x86_64`) {
		t.Errorf("unknown name: %v", err)
	}
	if err := c.Set("security.syscalls.deny", "mknodat"); err != nil {
		t.Fatal(err)
	}
	err = c.Set("security.syscalls.allow", "perf_event_open mknodat")
	if want := "security.syscalls.allow: mknodat is also in security.syscalls.deny; remove it from one of them"; err == nil || err.Error() != want {
		t.Errorf("conflict: %v\nwant %s", err, want)
	}
	c = Default()
	c.Set("security.syscalls.allow", "bpf")
	err = c.Set("security.syscalls.deny", "bpf")
	if want := "security.syscalls.allow: bpf is also in security.syscalls.deny; remove it from one of them"; err == nil || err.Error() != want {
		t.Errorf("conflict: %v\nwant %s", err, want)
	}
}

func TestSetAllValidatesOnceInAnyOrder(t *testing.T) {
	c := Default()
	err := c.SetAll([]Assignment{{"network.0.type", "macvlan"}, {"network.0.parent", "eth1"}})
	if err != nil || c.Networks[0].Parent != "eth1" {
		t.Fatalf("SetAll: %v, %+v", err, c.Networks)
	}
	before := c.Clone()
	if err := c.SetAll([]Assignment{{"limits.swap", "1GiB"}, {"limits.pids", "x"}}); err == nil || !strings.Contains(err.Error(), "limits.pids=x") {
		t.Fatalf("a bad value gave %v", err)
	}
	if err := c.SetAll([]Assignment{{"limits.swap", "1GiB"}}); err == nil {
		t.Fatal("swap without memory was accepted")
	}
	if c.Limits.Swap != before.Limits.Swap {
		t.Fatal("a failed SetAll changed the configuration")
	}
}
