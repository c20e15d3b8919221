package main

import (
	"slices"
	"testing"
)

func TestFrozenMs(t *testing.T) {
	for printed, want := range map[string]float64{
		"created snapshot snap1 of d1\nfrozen for 12 ms\n": 12,
		"frozen for 0.75 ms": 0.75,
	} {
		got, err := frozenMs(printed)
		if err != nil || got != want {
			t.Errorf("frozenMs(%q) = %v, %v; want %v", printed, got, err, want)
		}
	}
	if _, err := frozenMs("created snapshot snap1 of d1\n"); err == nil {
		t.Error("frozenMs without the line: no error; a missing report must not become a zero sample")
	}
}

func TestWithEnvReplaces(t *testing.T) {
	r := &runner{env: []string{"PATH=/bin", "LODGE_HOST_CONFIG=/a.toml"}}
	got := r.withEnv("LODGE_HOST_CONFIG=/b.toml").env
	want := []string{"PATH=/bin", "LODGE_HOST_CONFIG=/b.toml"}
	if !slices.Equal(got, want) {
		t.Errorf("withEnv: env %q, want %q", got, want)
	}
	if r.env[1] != "LODGE_HOST_CONFIG=/a.toml" {
		t.Errorf("withEnv changed the original runner's env: %q", r.env)
	}
}

func TestShellQuote(t *testing.T) {
	for arg, want := range map[string]string{
		"--snapshot":             "--snapshot",
		"release=bookworm":       "release=bookworm",
		"head -c 1M > /x":        "'head -c 1M > /x'",
		"it's":                   `'it'\''s'`,
		"":                       "''",
		"/var/lib/lodge-bench/f": "/var/lib/lodge-bench/f",
	} {
		if got := shellQuote(arg); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", arg, got, want)
		}
	}
}
