package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"lodge/manager"
)

func TestPrintBootResults(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.Local)
	results := []manager.BootResult{
		{Name: "cache", Outcome: manager.BootReady, NeededBy: []string{"app"}, StartedAt: &at, ReadyAt: &at},
		{Name: "db", Outcome: manager.BootFailed, Autostart: true, StartedAt: &at, Reason: "start db: boom"},
		{Name: "app", Outcome: manager.BootSkipped, Autostart: true, Reason: "it starts after db, which failed"},
		{Name: "web", Outcome: manager.BootReady, Autostart: true, StartedAt: &at, ReadyAt: &at, RestoreError: "criu said no"},
	}
	var out bytes.Buffer
	if err := printBootResults(&out, "table", results); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"03:04:05.006", "needed by app", "start db: boom", "restore failed, booted afresh: criu said no", "app    skipped  -"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	err := bootFailures(results)
	if err == nil || err.Error() != "autostart: 1 failed (db), 1 skipped (app); see above, and lodge start NAME to retry one" {
		t.Errorf("bootFailures: %v", err)
	}
	if err := bootFailures(results[:1]); err != nil {
		t.Errorf("bootFailures of a ready one: %v", err)
	}
	out.Reset()
	printBootResults(&out, "json", nil)
	if strings.TrimSpace(out.String()) != "[]" {
		t.Errorf("json of nothing: %q", out.String())
	}
}

func TestPrintShutdownResults(t *testing.T) {
	results := []manager.ShutdownResult{
		{Name: "a", Outcome: manager.ShutdownKilled, Reason: "still running 5s (init.stop_timeout) after its stop signal"},
		{Name: "b", Outcome: manager.ShutdownStopped, CheckpointError: "container b cannot be checkpointed"},
		{Name: "c", Outcome: manager.ShutdownCheckpointed, Checkpoint: "/r/containers/c/checkpoints/1"},
	}
	var out bytes.Buffer
	if err := printShutdownResults(&out, "table", results); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"killed", "still running 5s", "checkpoint failed, stopped instead: container b", "autostart restores /r/containers/c/checkpoints/1"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	if err := shutdownFailures(results); err != nil {
		t.Errorf("shutdownFailures: %v", err)
	}
	if err := shutdownFailures([]manager.ShutdownResult{{Name: "x", Outcome: manager.ShutdownFailed}}); err == nil || !strings.Contains(err.Error(), "could not stop x") {
		t.Errorf("shutdownFailures: %v", err)
	}
}

// TestUnitAllowsShutdownAll: lodge-containers.service gives shutdown-all
// (ExecStop=) more than its bound, its budget plus manager.ShutdownGrace,
// with a few seconds for lodge itself: systemd must never kill it while
// it still stops containers cleanly.
func TestUnitAllowsShutdownAll(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("dist", "systemd", "lodge-containers.service"))
	if err != nil {
		t.Fatal(err)
	}
	var budget, stopLimit time.Duration
	for _, line := range strings.Split(string(data), "\n") {
		key, value, _ := strings.Cut(strings.TrimSpace(line), "=")
		switch key {
		case "ExecStop":
			_, timeout, ok := strings.Cut(value, "shutdown-all --timeout ")
			if budget, err = parseTimeout(strings.Fields(timeout + " ")[0]); !ok || err != nil {
				t.Fatalf("ExecStop=%s: no shutdown-all --timeout: %v", value, err)
			}
		case "TimeoutStopSec":
			if stopLimit, err = time.ParseDuration(value + "s"); err != nil {
				t.Fatalf("TimeoutStopSec=%s: %v", value, err)
			}
		}
	}
	if margin := 5 * time.Second; budget == 0 || stopLimit < budget+manager.ShutdownGrace+margin {
		t.Errorf("TimeoutStopSec=%s, below shutdown-all's bound: --timeout %s + grace %s + %s for lodge itself", stopLimit, budget, manager.ShutdownGrace, margin)
	}
}
