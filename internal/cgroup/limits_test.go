package cgroup

import (
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// render lists writes as "file=value" with a * for limits that are set.
func render(ws []write) string {
	var parts []string
	for _, w := range ws {
		s := w.File + "=" + w.Value
		if w.Set {
			s += "*"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

func TestRenderV2(t *testing.T) {
	for _, c := range []struct {
		l    Limits
		want string
	}{
		{Limits{}, "memory.max=max memory.swap.max=max cpu.max=max 100000 cpuset.cpus= cpuset.mems= pids.max=max"},
		{Limits{MemoryBytes: 512 << 20, SwapBytes: 256 << 20, CPUQuota: 1.5, Cpuset: "0-1", Pids: 100},
			"memory.max=536870912* memory.swap.max=268435456* cpu.max=150000 100000* cpuset.cpus=0-1* cpuset.mems= pids.max=100*"},
		{Limits{MemoryBytes: 1 << 30, SwapBytes: -1, CPUQuota: 0.01},
			"memory.max=1073741824* memory.swap.max=0* cpu.max=1000 100000* cpuset.cpus= cpuset.mems= pids.max=max"},
	} {
		if got := render(renderV2(c.l)); got != c.want {
			t.Errorf("%+v:\ngot  %s\nwant %s", c.l, got, c.want)
		}
	}
}

func TestRenderV1(t *testing.T) {
	st := v1State{ParentCpus: "0-3", ParentMems: "0", Memsw: -1}
	for _, c := range []struct {
		name string
		l    Limits
		st   v1State
		want string
	}{
		{"unlimited", Limits{}, st,
			"memory.limit_in_bytes=-1 memory.memsw.limit_in_bytes=-1 cpu.cfs_period_us=100000 cpu.cfs_quota_us=-1 cpuset.mems=0 cpuset.cpus=0-3 pids.max=max"},
		{"all set, memsw unlimited now", Limits{MemoryBytes: 1000, SwapBytes: 500, CPUQuota: 2, Cpuset: "1", Pids: 7}, st,
			"memory.limit_in_bytes=1000* memory.memsw.limit_in_bytes=1500* cpu.cfs_period_us=100000 cpu.cfs_quota_us=200000* cpuset.mems=0 cpuset.cpus=1* pids.max=7*"},
		{"no swap", Limits{MemoryBytes: 1000, SwapBytes: -1}, st,
			"memory.limit_in_bytes=1000* memory.memsw.limit_in_bytes=1000*"},
		{"swap unset resets memsw", Limits{MemoryBytes: 1000}, v1State{Memsw: 1500},
			"memory.limit_in_bytes=1000* memory.memsw.limit_in_bytes=-1"},
		{"memory unset after a limit", Limits{}, v1State{Memsw: 1500},
			"memory.memsw.limit_in_bytes=-1 memory.limit_in_bytes=-1"},
		{"raising memory above the current memsw writes memsw first", Limits{MemoryBytes: 4000, SwapBytes: 1000}, v1State{Memsw: 1500},
			"memory.memsw.limit_in_bytes=5000* memory.limit_in_bytes=4000*"},
		{"lowering writes memory first", Limits{MemoryBytes: 500, SwapBytes: 100}, v1State{Memsw: 1500},
			"memory.limit_in_bytes=500* memory.memsw.limit_in_bytes=600*"},
		{"kernel's unlimited read back", Limits{MemoryBytes: 500}, v1State{Memsw: 9223372036854771712},
			"memory.limit_in_bytes=500* memory.memsw.limit_in_bytes=-1"},
		{"unknown parent cpuset writes no cpuset", Limits{}, v1State{Memsw: -1},
			"memory.limit_in_bytes=-1 memory.memsw.limit_in_bytes=-1 cpu.cfs_period_us=100000 cpu.cfs_quota_us=-1 pids.max=max"},
	} {
		got := render(renderV1(c.l, c.st))
		if !strings.HasPrefix(got, c.want) {
			t.Errorf("%s:\ngot  %s\nwant %s", c.name, got, c.want)
		}
	}
}

func TestCheckV1(t *testing.T) {
	if err := checkV1(Limits{SwapBytes: 100}); err == nil || !strings.Contains(err.Error(), KeyMemory) {
		t.Errorf("swap without memory: %v", err)
	}
	if err := checkV1(Limits{SwapBytes: -1}); err == nil {
		t.Error("no swap without memory: no error")
	}
	if err := checkV1(Limits{MemoryBytes: 1 << 62, SwapBytes: 1 << 62}); err == nil {
		t.Error("overflow: no error")
	}
	if err := checkV1(Limits{MemoryBytes: 100, SwapBytes: 100}); err != nil {
		t.Error(err)
	}
}

func TestValidate(t *testing.T) {
	ok := []Limits{{}, {MemoryBytes: 1, SwapBytes: -5, CPUQuota: 0.01, Cpuset: "0-3,5,7-8", Pids: 1}, {Cpuset: "0"}}
	for _, l := range ok {
		if err := l.Validate(); err != nil {
			t.Errorf("%+v: %v", l, err)
		}
	}
	bad := map[string]Limits{
		KeyMemory + " ":   {MemoryBytes: -1},
		KeyCPU + " ":      {CPUQuota: -1},
		KeyCPU + " = ":    {CPUQuota: 0.001},
		KeyCpuset + " = ": {Cpuset: "a"},
		KeyCpuset:         {Cpuset: "3-1"},
		KeyCpuset + "  ":  {Cpuset: "1,"},
		KeyPids:           {Pids: -3},
	}
	for want, l := range bad {
		err := l.Validate()
		if err == nil || !strings.Contains(err.Error(), strings.TrimSpace(want)) {
			t.Errorf("%+v: error %v does not name %q", l, err, want)
		}
	}
}

func TestEventsFrozen(t *testing.T) {
	if !eventsFrozen("populated 1\nfrozen 1") || eventsFrozen("populated 1\nfrozen 0") || eventsFrozen("populated 0") {
		t.Error("eventsFrozen")
	}
}

func TestParseCPUStatUsage(t *testing.T) {
	got := parseCPUStatUsage("usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n")
	if got != 1500*time.Microsecond {
		t.Errorf("got %v", got)
	}
}

func TestBackoffIsShort(t *testing.T) {
	var b backoff
	ctx := t.Context()
	var steps []time.Duration
	for range 12 {
		if err := b.wait(ctx); err != nil {
			t.Fatal(err)
		}
		steps = append(steps, b.d)
	}
	if steps[0] != minPoll || steps[len(steps)-1] != maxPoll || maxPoll > 10*time.Millisecond {
		t.Errorf("backoff steps %v", steps)
	}
}

func TestInternalProcessesError(t *testing.T) {
	err := internalProcessesError("/sys/fs/cgroup/user.slice/session-1.scope", unix.EBUSY)
	if !errors.Is(err, ErrInternalProcesses) || !errors.Is(err, unix.EBUSY) {
		t.Fatalf("%v does not wrap both causes", err)
	}
	for _, want := range []string{"session-1.scope", "Delegate=yes", "no-internal-process"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not mention %q", err, want)
		}
	}
}
