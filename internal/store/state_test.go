package store

import (
	"os"
	"testing"
	"time"
)

func TestProcessIdentity(t *testing.T) {
	self, err := ProcessOf(os.Getpid())
	if err != nil || !self.Alive() {
		t.Fatalf("ProcessOf(self) = %+v, %v", self, err)
	}
	reused := Process{PID: self.PID, Start: self.Start + 1}
	if reused.Alive() {
		t.Fatal("a process with another start time counts as alive (pid reuse)")
	}
	if (Process{}).Alive() {
		t.Fatal("pid 0 counts as alive")
	}
}

func TestStateRoundTrip(t *testing.T) {
	s, err := Open(t.TempDir())
	if err == nil {
		err = s.Prepare()
	}
	if err != nil {
		t.Fatal(err)
	}
	if st, err := s.ReadState("c1"); st != nil || err != nil {
		t.Fatalf("state of a stopped container = %v, %v", st, err)
	}
	want := &State{Name: "c1", Status: Running, Init: Process{PID: 42, Start: 7}, StartedAt: time.Unix(100, 0).UTC(),
		Cgroups: map[string]string{"memory": "/sys/fs/cgroup/memory/lodge/c1"}}
	if err := s.WriteState(want); err != nil {
		t.Fatal(err)
	}
	got, err := s.ReadState("c1")
	if err != nil || got.Init != want.Init || got.Cgroups["memory"] != want.Cgroups["memory"] || !got.StartedAt.Equal(want.StartedAt) {
		t.Fatalf("read back %+v, %v", got, err)
	}
	s.RemoveState("c1")
	if st, _ := s.ReadState("c1"); st != nil {
		t.Fatal("state survived RemoveState")
	}
	os.WriteFile(s.StatePath("bad"), []byte("{"), 0o600)
	if _, err := s.ReadState("bad"); err == nil {
		t.Fatal("corrupt state file accepted")
	}
}
