package config

import (
	"strings"
	"testing"
)

var twoCPUs = HostFacts{CPUs: []int{0, 1}, Controllers: []string{"cpu", "cpuset", "memory", "pids"}}

func TestValidateOn(t *testing.T) {
	for _, tc := range []struct {
		set     []string
		facts   HostFacts
		want    string // "" for valid
		atStart bool   // CheckHost refuses it too
	}{
		{set: []string{"limits.cpu=2", "limits.cpuset=0-1"}, facts: twoCPUs},
		{set: []string{"limits.cpu=1e308"}, facts: twoCPUs, want: "limits.cpu: 1e+308 CPUs is more than this host has (2 CPUs); use at most 2"},
		{set: []string{"limits.cpu=2.5"}, facts: twoCPUs, want: "more than this host has (2 CPUs)"},
		{set: []string{"limits.cpu=64"}, facts: HostFacts{}}, // unknown host: only the pure bounds
		{set: []string{"limits.cpuset=1-2"}, facts: twoCPUs, want: "limits.cpuset: CPU 2 is not online on this host (online: 0-1)", atStart: true},
		{set: []string{"limits.memory=1G"}, facts: HostFacts{Controllers: []string{"pids"}}, want: "limits.memory: needs the memory cgroup controller", atStart: true},
		{set: []string{"limits.pids=0"}, facts: HostFacts{Controllers: []string{}}},
		{set: nil, facts: HostFacts{Controllers: []string{}}, want: "limits.pids: needs the pids cgroup controller", atStart: true},
	} {
		c := Default()
		for _, a := range tc.set {
			key, value, _ := ParseAssignment(a)
			if err := c.assign(key, value); err != nil {
				t.Fatal(err)
			}
		}
		err := c.ValidateOn(tc.facts)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%v on %+v: %v; want %q", tc.set, tc.facts, err, tc.want)
		}
		if startErr := c.CheckHost(tc.facts); (startErr != nil) != tc.atStart {
			t.Errorf("%v: CheckHost = %v; want an error: %v", tc.set, startErr, tc.atStart)
		}
	}
}

func TestPureLimitBounds(t *testing.T) {
	for assignment, want := range map[string]string{
		"limits.cpu=1e308":         "more CPUs than Linux supports (8192)",
		"limits.cpuset=0, 1":       "has blanks in it",
		"limits.swap=1GiB":         "set limits.memory too",
		"limits.pids=-1":           "negative",
		"limits.cpuset=0-99999999": "above the limit",
	} {
		c := Default()
		key, value, _ := ParseAssignment(assignment)
		err := c.Set(key, value)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Set %s: %v; want %q", assignment, err, want)
		}
	}
	c := Default()
	c.Limits.Memory, c.Limits.Swap = 1<<62, 1<<62
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "more than the largest size") {
		t.Errorf("memory + swap overflowing: %v", err)
	}
}

// TestPidsDefault: a container gets DefaultPids unless its file or the
// host's [defaults] say otherwise, and 0 (no limit) survives a save.
func TestPidsDefault(t *testing.T) {
	c, err := parseTestContainer("version = 1\n")
	if err != nil || c.Limits.Pids != DefaultPids {
		t.Fatalf("a file without limits.pids: %+v, %v; want pids %d", c, err, DefaultPids)
	}
	if err := c.Set("limits.pids", "0"); err != nil {
		t.Fatal(err)
	}
	text, _ := c.Marshal()
	back, err := parseTestContainer(string(text))
	if err != nil || back.Limits.Pids != 0 {
		t.Fatalf("no limit did not survive a save:\n%s\n%+v, %v", text, back, err)
	}
	if err := back.Set("limits.pids", ""); err != nil || back.Limits.Pids != DefaultPids {
		t.Errorf("reset to default: %d, %v", back.Limits.Pids, err)
	}
	for defaults, want := range map[string]int64{
		"":                           DefaultPids,
		`"limits.memory" = "1G"`:     DefaultPids, // other defaults leave it
		`"limits.pids" = "0"`:        0,
		"\"limits.pids\" = \"4096\"": 4096,
	} {
		h, err := parseTestHost("version = 1\n[defaults]\n" + defaults + "\n")
		if err != nil {
			t.Fatal(err)
		}
		c, err := h.DefaultContainer()
		if err != nil || c.Limits.Pids != want {
			t.Errorf("host defaults %s: pids %+v, %v; want %d", defaults, c, err, want)
		}
	}
}
