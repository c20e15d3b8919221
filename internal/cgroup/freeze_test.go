package cgroup

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The freezers' state logic on files laid out as the kernel lays them out:
// this runs on every host, also for the cgroup2 freezer where the host (a
// hybrid one) cannot freeze through it for real.

func writeTestFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readTestFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestV1FreezerState(t *testing.T) {
	dir := t.TempDir()
	fr := v1Freezer{dir}
	for state, want := range map[string]bool{"THAWED\n": false, "FREEZING\n": false, "FROZEN\n": true} {
		writeTestFile(t, filepath.Join(dir, "freezer.state"), state)
		if got, err := fr.frozen(); err != nil || got != want {
			t.Errorf("freezer.state %q: frozen = %v, %v; want %v", state, got, err, want)
		}
	}
}

func TestV2FreezerState(t *testing.T) {
	dir := t.TempDir()
	fr := v2Freezer{dir}
	for events, want := range map[string]bool{
		"populated 1\nfrozen 0\n": false,
		"populated 1\nfrozen 1\n": true,
		"populated 0\n":           false, // a kernel without the key
	} {
		writeTestFile(t, filepath.Join(dir, "cgroup.events"), events)
		if got, err := fr.frozen(); err != nil || got != want {
			t.Errorf("cgroup.events %q: frozen = %v, %v; want %v", events, got, err, want)
		}
	}
}

// TestFreezeReturnsOnceFrozen: freeze asks, then returns as soon as the
// state says frozen (here at once, as the files already say so).
func TestFreezeReturnsOnceFrozen(t *testing.T) {
	dir := t.TempDir()
	writeTestFile(t, filepath.Join(dir, "cgroup.freeze"), "0\n")
	writeTestFile(t, filepath.Join(dir, "cgroup.events"), "populated 1\nfrozen 1\n")
	if err := (v2Freezer{dir}).freeze(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := readTestFile(t, filepath.Join(dir, "cgroup.freeze")); got != "1" {
		t.Errorf("cgroup.freeze = %q after freeze, want 1", got)
	}
}

// TestFreezeStuckThaws: a group that never reaches frozen (a task stuck in
// the kernel keeps a v1 freezer FREEZING) is thawed again when ctx ends, so
// a copy that gives up never leaves the container stopped.
func TestFreezeStuckThaws(t *testing.T) {
	t.Run("v1", func(t *testing.T) {
		dir := t.TempDir()
		state := filepath.Join(dir, "freezer.state")
		writeTestFile(t, state, "FREEZING\n")
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		// A plain file would read back FROZEN once written; the kernel
		// keeps saying FREEZING while a task is stuck, as stuckV1 does.
		fr := stuckV1{v1Freezer{dir}}
		err := waitFrozen(ctx, fr)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("waitFrozen = %v, want context.Canceled", err)
		}
		if got := readTestFile(t, state); got != "THAWED" {
			t.Errorf("freezer.state = %q after giving up, want THAWED", got)
		}
	})
	t.Run("v2", func(t *testing.T) {
		dir := t.TempDir()
		writeTestFile(t, filepath.Join(dir, "cgroup.freeze"), "0\n")
		writeTestFile(t, filepath.Join(dir, "cgroup.events"), "populated 1\nfrozen 0\n")
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := (v2Freezer{dir}).freeze(ctx)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("freeze = %v, want context.Canceled", err)
		}
		if got := readTestFile(t, filepath.Join(dir, "cgroup.freeze")); got != "0" {
			t.Errorf("cgroup.freeze = %q after giving up, want 0 (thawed)", got)
		}
	})
}

// stuckV1 is a v1 freezer whose tasks never all freeze.
type stuckV1 struct{ v1Freezer }

func (stuckV1) frozen() (bool, error) { return false, nil }

// TestKernelStack: /proc/PID/stack becomes one line of function names.
func TestKernelStack(t *testing.T) {
	stack := "[<0>] fuse_get_req+0x1a/0x2b0\n[<0>] __fuse_simple_request+0x3c/0x310\n[<0>] fuse_lookup_name+0xe5/0x240\n"
	if got, want := kernelStack(stack), "fuse_get_req <- __fuse_simple_request <- fuse_lookup_name"; got != want {
		t.Errorf("kernelStack = %q, want %q", got, want)
	}
}

// TestNotFrozenErrorNamesTasks: the error names each task and where it waits.
func TestNotFrozenErrorNamesTasks(t *testing.T) {
	err := &NotFrozenError{Err: context.DeadlineExceeded, Tasks: []StuckTask{{PID: 7, TID: 7, Comm: "stat", State: "D", Where: "fuse_get_req"}}}
	if got := err.Error(); !strings.Contains(got, "stat (pid 7, state D) in fuse_get_req") || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %q (Is DeadlineExceeded: %v)", got, errors.Is(err, context.DeadlineExceeded))
	}
}
