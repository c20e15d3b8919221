package config

import (
	"testing"

	"lodge/internal/cgroup"
)

// startRefuses returns what `lodge start` would still refuse in a config
// that validation accepted, without looking at the host: the cgroup
// package's own checks of the limits (as manager/monitor converts them).
func startRefuses(c *Container) error {
	return cgroup.Limits{
		MemoryBytes: int64(c.Limits.Memory),
		SwapBytes:   int64(c.Limits.Swap),
		CPUQuota:    c.Limits.CPU,
		Cpuset:      c.Limits.Cpuset,
		Pids:        c.Limits.Pids,
	}.Validate()
}

// FuzzParseContainer checks that no input makes the loader panic, that
// whatever it accepts saves and loads back to the same configuration, and
// that start would not refuse it later for a reason config could know.
// Run it longer with:
//
//	go test ./config -run '^$' -fuzz '^FuzzParseContainer$' -fuzztime 60s
func FuzzParseContainer(f *testing.F) {
	f.Add("version = 1\n")
	f.Add("version = 1\n[limits]\nmemory = \"1.5GiB\"\nswap = 5\ncpu = 0.5\ncpuset = \"0-1\"\npids = 0\n")
	f.Add("version = 1\ninit = { command = ['/bin/sh', '-c', 'x y'], stop_signal = \"RTMIN+3\" }\n")
	f.Add("version = 1\n[source.options]\n\"a b\" = \"c\"\n[rootfs]\nshift = 'chown'\n")
	f.Add("version = 1\n[limits]\ncpu = 1e308\ncpuset = \"0, 1\"\n")
	f.Add("version = 1\n[security]\nnesting = true\n[security.syscalls]\ndeny = [\"kexec_load\"]\n")
	f.Fuzz(func(t *testing.T, text string) {
		c, err := parseTestContainer(text)
		if err != nil {
			return
		}
		if err := startRefuses(c); err != nil {
			t.Fatalf("accepted, but start would refuse it: %v\n%s", err, text)
		}
		saved, err := c.Marshal()
		if err != nil {
			t.Fatalf("Marshal of accepted config: %v", err)
		}
		back, err := parseTestContainer(string(saved))
		if err != nil {
			t.Fatalf("saved config does not load: %v\n%s", err, saved)
		}
		// Compare as saved text: an empty table and a missing one, or two
		// spellings of one time, are the same configuration.
		if again, _ := back.Marshal(); string(again) != string(saved) {
			t.Fatalf("round trip changed the config:\n%s\n%s", saved, again)
		}
	})
}

// FuzzSetAssignment feeds `lodge config set` arguments through
// ParseAssignment and Set: no panic; an accepted value validates, reads back
// with Get in a form Set accepts again with the same result, survives a save
// and load, and is nothing start would refuse. Run it longer with:
//
//	go test ./config -run '^$' -fuzz '^FuzzSetAssignment$' -fuzztime 60s
func FuzzSetAssignment(f *testing.F) {
	for _, seed := range []string{
		"limits.memory=1.5GiB", "limits.swap=1G", "limits.cpu=1e308", "limits.cpu=0.01",
		"limits.cpuset=0-3,5", "limits.cpuset= 0, 1", "limits.pids=0", "limits.pids=",
		"init.command=/bin/sh -c 'exec init'", `init.command=/bin/sh "a\"b"`, "init.stop_signal=RTMIN+3",
		"init.stop_timeout=1m30s", "rootfs.shift=chown", "lxcfs.enabled=false",
		"security.syscalls.deny=kexec_load bpf", "source.template=x", "nosuch=1", "=",
	} {
		f.Add(seed, "limits.memory=512MiB")
	}
	f.Fuzz(func(t *testing.T, first, second string) {
		c := Default()
		for _, a := range []string{second, first} {
			key, value, err := ParseAssignment(a)
			if err != nil {
				return
			}
			if err := c.Set(key, value); err != nil {
				continue // refused, and c unchanged
			}
			checkAccepted(t, c, key, a)
		}
	})
}

func checkAccepted(t *testing.T, c *Container, key, assignment string) {
	t.Helper()
	if err := c.Validate(); err != nil {
		t.Fatalf("%q accepted, but the config does not validate: %v", assignment, err)
	}
	if err := startRefuses(c); err != nil {
		t.Fatalf("%q accepted, but start would refuse it: %v", assignment, err)
	}
	value, err := c.Get(key)
	if err != nil {
		t.Fatalf("Get(%s) after setting it: %v", key, err)
	}
	again := c.Clone()
	if err := again.Set(key, value); err != nil {
		t.Fatalf("%q: Set refuses what Get returned, %q: %v", assignment, value, err)
	}
	if got, _ := again.Get(key); got != value {
		t.Fatalf("%q: Get/Set do not round trip: %q then %q", assignment, value, got)
	}
	saved, err := c.Marshal()
	if err != nil {
		t.Fatalf("%q: Marshal: %v", assignment, err)
	}
	back, err := parseTestContainer(string(saved))
	if err != nil {
		t.Fatalf("%q: the saved config does not load: %v\n%s", assignment, err, saved)
	}
	if got, _ := back.Get(key); got != value {
		t.Fatalf("%q: after save and load %s = %q, want %q\n%s", assignment, key, got, value, saved)
	}
}
