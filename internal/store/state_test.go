package store

import (
	"errors"
	"os"
	"strings"
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

// TestStateBootID: WriteState stamps the state with this boot's id; a state
// from another boot reads as ErrOtherBoot, even though the init it names
// (this test process) is alive; one without an id is judged by pid and
// start time, as before boot ids.
func TestStateBootID(t *testing.T) {
	if BootID() == "" {
		t.Fatalf("no boot id from %s", bootIDPath)
	}
	s, err := Open(t.TempDir())
	if err == nil {
		err = s.Prepare()
	}
	if err != nil {
		t.Fatal(err)
	}
	self, _ := ProcessOf(os.Getpid())
	if err := s.WriteState(&State{Name: "c1", Status: Running, Init: self}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(s.StatePath("c1"))
	if !strings.Contains(string(data), `"boot_id": "`+BootID()+`"`) {
		t.Fatalf("the state file lacks this boot's id %s:\n%s", BootID(), data)
	}
	for _, tt := range []struct {
		bootID string
		other  bool
	}{
		{BootID(), false},
		{"", false},
		{"00000000-0000-4000-8000-000000000000", true},
	} {
		text := strings.Replace(string(data), `"boot_id": "`+BootID()+`"`, `"boot_id": "`+tt.bootID+`"`, 1)
		os.WriteFile(s.StatePath("c1"), []byte(text), 0o600)
		st, err := s.ReadState("c1")
		switch {
		case tt.other && (st != nil || !errors.Is(err, ErrOtherBoot)):
			t.Errorf("boot id %q: read %+v, %v; want ErrOtherBoot", tt.bootID, st, err)
		case tt.other && !strings.Contains(err.Error(), s.StatePath("c1")):
			t.Errorf("the error does not name the file: %v", err)
		case !tt.other && (st == nil || err != nil || !st.Init.Alive()):
			t.Errorf("boot id %q: read %+v, %v; want the live state", tt.bootID, st, err)
		}
	}
}
