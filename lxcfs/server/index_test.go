package server

import (
	"os"
	"testing"
	"time"

	"lodge/internal/cgroup"
	"lodge/internal/store"
)

// TestIndexRefreshRereadsOnlyChangedStates checks the index's refresh: an
// unchanged state file keeps its container (not read again), a rewritten
// one is read anew, a removed one drops its container.
func TestIndexRefreshRereadsOnlyChangedStates(t *testing.T) {
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Prepare(); err != nil {
		t.Fatal(err)
	}
	self, err := store.ProcessOf(os.Getpid()) // an init that runs
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, started time.Time) {
		t.Helper()
		if err := os.MkdirAll(st.ContainerDir(name), 0o700); err != nil {
			t.Fatal(err)
		}
		state := &store.State{Name: name, Status: store.Running, Init: self, StartedAt: started,
			Cgroups: map[string]string{cgroup.UnifiedKey: "/sys/fs/cgroup/unified/test/" + name}}
		if err := st.WriteState(state); err != nil {
			t.Fatal(err)
		}
	}
	byName := func(x *Index) map[string]*Container {
		m := map[string]*Container{}
		for _, c := range x.Running() {
			m[c.Name] = c
		}
		return m
	}
	first := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	write("a", first)
	write("b", first)
	x := NewIndex(st, &cgroup.Host{}) // no hierarchies: placed by the unified key
	before := byName(x)
	if len(before) != 2 {
		t.Fatalf("indexed %d containers, want 2", len(before))
	}

	write("b", first.Add(time.Hour)) // b restarted
	x.refresh()
	after := byName(x)
	if after["a"] != before["a"] {
		t.Error("a's state file is unchanged, yet the refresh read it again")
	}
	if after["b"] == before["b"] || !after["b"].Started.Equal(first.Add(time.Hour)) {
		t.Errorf("b's rewritten state was not read again: started %v", after["b"].Started)
	}

	st.RemoveState("a")
	x.refresh()
	if _, ok := byName(x)["a"]; ok {
		t.Error("a's state file is gone, yet it is still indexed")
	}
}
