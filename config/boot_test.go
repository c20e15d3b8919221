package config

import (
	"strings"
	"testing"
	"time"
)

func TestBootKeys(t *testing.T) {
	c := Default()
	for _, a := range []string{"boot.autostart=true", "boot.after=db cache", "boot.ready_command=/bin/sh -c 'test -e /ready'",
		"boot.ready_timeout=45s", "boot.host_shutdown=checkpoint"} {
		key, value, _ := ParseAssignment(a)
		if err := c.Set(key, value); err != nil {
			t.Fatalf("%s: %v", a, err)
		}
	}
	if !c.Boot.Autostart || strings.Join(c.Boot.After, ",") != "db,cache" || len(c.Boot.ReadyCommand) != 3 ||
		c.Boot.ReadyWithin() != 45*time.Second || !c.Boot.CheckpointAtShutdown() {
		t.Fatalf("boot: %+v", c.Boot)
	}
	text, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse("config.toml", text)
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	for _, key := range []string{"boot.after", "boot.autostart", "boot.host_shutdown", "boot.ready_command", "boot.ready_timeout"} {
		if a, b := mustGet(t, c, key), mustGet(t, back, key); a != b {
			t.Errorf("%s: %q saved, %q loaded", key, a, b)
		}
	}
	// Defaults, and an empty value resets.
	d := Default()
	if d.Boot.ReadyWithin() != DefaultReadyTimeout.Std() || mustGet(t, d, "boot.host_shutdown") != HostShutdownStop || d.Boot.CheckpointAtShutdown() {
		t.Errorf("defaults: %+v", d.Boot)
	}
	if err := c.Set("boot.after", ""); err != nil || len(c.Boot.After) != 0 {
		t.Errorf("reset boot.after: %v, %v", err, c.Boot.After)
	}
}

func mustGet(t *testing.T, c *Container, key string) string {
	t.Helper()
	v, err := c.Get(key)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestBootKeyErrors(t *testing.T) {
	for _, tc := range []struct{ key, value, want string }{
		{"boot.after", "db db", "boot.after: names db twice; name it once"},
		{"boot.after", "db ../x", `boot.after: invalid container name "../x"`},
		{"boot.host_shutdown", "suspend", `boot.host_shutdown: "suspend" must be stop or checkpoint`},
		{"boot.ready_timeout", "0s", "boot.ready_timeout: 0s gives the container no time to be ready"},
		{"boot.ready_timeout", "-1s", `"-1s" is negative`},
		{"boot.autostart", "maybe", `"maybe" is not true or false`},
	} {
		err := Default().Set(tc.key, tc.value)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s=%s: %v, want %q", tc.key, tc.value, err, tc.want)
		}
	}
}
