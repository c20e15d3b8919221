package cgstats

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// The readers themselves are pinned by lxcfs/render's golden tests (v1, v2,
// hybrid cgroup trees under render/testdata); these cover the edges.

func TestNoController(t *testing.T) {
	empty := Cgroups{"unified": t.TempDir()} // cgroup2 without controllers
	if _, err := ReadMemory(empty); !errors.Is(err, ErrNoController) {
		t.Errorf("memory: %v", err)
	}
	if _, err := ReadIO(empty); !errors.Is(err, ErrNoController) {
		t.Errorf("io: %v", err)
	}
}

func TestV1Limits(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("memory.limit_in_bytes", "9223372036854771712\n") // v1's "no limit"
	write("memory.usage_in_bytes", "1048576\n")
	write("memory.stat", "total_cache 0\nhierarchical_memory_limit 536870912\n")
	m, err := ReadMemory(Cgroups{"memory": dir})
	if err != nil {
		t.Fatal(err)
	}
	if m.Limit != 512<<20 {
		t.Errorf("a parent's limit (hierarchical_memory_limit) binds: got %d", m.Limit)
	}
	if m.SwapAccounted || m.SwapLimit != Unlimited {
		t.Errorf("without memsw files swap is not accounted: %+v", m)
	}
	write("memory.limit_in_bytes", "not a number\n")
	if _, err := ReadMemory(Cgroups{"memory": dir}); err == nil {
		t.Error("a garbled limit is not an error")
	}
}

func TestReadTasksBounded(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755)
	os.WriteFile(filepath.Join(dir, "tasks"), []byte("1\n2\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "a", "b", "tasks"), []byte("3\n4\n5\n"), 0o644)
	tids, truncated, err := ReadTasks(Cgroups{"pids": dir}, 4)
	if err != nil || !truncated || len(tids) != 4 {
		t.Errorf("ReadTasks(max 4) = %v, truncated %v, %v", tids, truncated, err)
	}
	tids, truncated, _ = ReadTasks(Cgroups{"pids": dir}, 100)
	if truncated || len(tids) != 5 {
		t.Errorf("ReadTasks(max 100) = %v, truncated %v", tids, truncated)
	}
}
