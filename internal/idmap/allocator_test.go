package idmap

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Environment of the helper process that TestMain turns the test binary into.
const (
	helperPathEnv  = "LODGE_IDMAP_HELPER_PATH"
	helperNamesEnv = "LODGE_IDMAP_HELPER_NAMES"
)

var testPool = Pool{First: 524288, Size: 65536, Count: 1000}

func TestMain(m *testing.M) {
	if path := os.Getenv(helperPathEnv); path != "" {
		os.Exit(helperAllocate(path, strings.Split(os.Getenv(helperNamesEnv), ",")))
	}
	os.Exit(m.Run())
}

// helperAllocate allocates names in path, as a separate lodge process would.
func helperAllocate(path string, names []string) int {
	a := Open(path, testPool)
	for _, n := range names {
		if _, err := a.Allocate(n); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return 0
}

func newAllocator(t *testing.T, pool Pool) *Allocator {
	t.Helper()
	return Open(filepath.Join(t.TempDir(), "idmap.json"), pool)
}

func TestAllocateLookupRelease(t *testing.T) {
	a := newAllocator(t, testPool)
	r, err := a.Allocate("web1")
	if err != nil {
		t.Fatal(err)
	}
	if r != testPool.Range(0) {
		t.Fatalf("first allocation = %v, want %v", r, testPool.Range(0))
	}
	r2, err := a.Allocate("web2")
	if err != nil || r2 != testPool.Range(1) {
		t.Fatalf("second allocation = %v, %v", r2, err)
	}
	if got, ok, err := a.Lookup("web1"); err != nil || !ok || got != r {
		t.Fatalf("Lookup(web1) = %v, %v, %v", got, ok, err)
	}
	if _, ok, err := a.Lookup("nope"); err != nil || ok {
		t.Fatalf("Lookup(nope) = %v, %v", ok, err)
	}
	_, err = a.Allocate("web1")
	if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), `"web1"`) || !strings.Contains(err.Error(), r.String()) {
		t.Fatalf("second Allocate(web1) error = %v", err)
	}
	if err := a.Release("web1"); err != nil {
		t.Fatal(err)
	}
	if err := a.Release("web1"); err != nil {
		t.Fatalf("releasing twice: %v", err)
	}
	if err := a.Release("never-existed"); err != nil {
		t.Fatalf("releasing an unknown name: %v", err)
	}
	// The freed lowest range is handed out again.
	if r3, err := a.Allocate("web3"); err != nil || r3 != r {
		t.Fatalf("Allocate(web3) = %v, %v; want %v", r3, err, r)
	}
	list, err := a.List()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Range{"web2": r2, "web3": r}
	if fmt.Sprint(list) != fmt.Sprint(want) {
		t.Fatalf("List = %v, want %v", list, want)
	}
}

func TestChurnNeverOverlaps(t *testing.T) {
	pool := Pool{First: 100000, Size: 65536, Count: 120}
	a := newAllocator(t, pool)
	rng := rand.New(rand.NewPCG(1, 2))
	names := make([]string, 200)
	for i := range names {
		names[i] = fmt.Sprintf("c%03d", i)
	}
	live := map[string]Range{}
	seen := map[Range]bool{}
	exhausted := 0
	for step := 0; step < 2000; step++ {
		// Alternate phases that mostly allocate and mostly release, so the
		// pool fills up and drains again, in random order.
		allocate := (step/250)%2 == 0 == (rng.IntN(100) < 85)
		name := names[rng.IntN(len(names))]
		for _, isLive := live[name]; isLive == allocate && len(live) > 0 && len(live) < len(names); _, isLive = live[name] {
			name = names[rng.IntN(len(names))]
		}
		if _, ok := live[name]; ok {
			if err := a.Release(name); err != nil {
				t.Fatal(err)
			}
			delete(live, name)
			continue
		}
		r, err := a.Allocate(name)
		if len(live) == int(pool.Count) {
			if !errors.Is(err, ErrExhausted) {
				t.Fatalf("step %d: pool full, Allocate = %v, %v", step, r, err)
			}
			exhausted++
			continue
		}
		if err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		if want := lowestUnused(pool, live); r != want {
			t.Fatalf("step %d: got %v, want the lowest free %v", step, r, want)
		}
		for other, o := range live {
			if o.Overlaps(r) {
				t.Fatalf("step %d: %s got %v overlapping %s's %v", step, name, r, other, o)
			}
		}
		live[name] = r
		seen[r] = true
	}
	if exhausted == 0 {
		t.Error("the churn never filled the pool")
	}
	t.Logf("%d allocations refused on a full pool", exhausted)
	if len(seen) > int(pool.Count) {
		t.Fatalf("%d distinct ranges handed out from a pool of %d", len(seen), pool.Count)
	}
	got, err := a.List()
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(live) {
		t.Fatalf("file holds %v, want %v", got, live)
	}
}

func lowestUnused(p Pool, live map[string]Range) Range {
	used := map[Range]bool{}
	for _, r := range live {
		used[r] = true
	}
	for i := uint32(0); i < p.Count; i++ {
		if !used[p.Range(i)] {
			return p.Range(i)
		}
	}
	return Range{}
}

func TestExhausted(t *testing.T) {
	a := newAllocator(t, Pool{First: 1000, Size: 10, Count: 2})
	for _, n := range []string{"a", "b"} {
		if _, err := a.Allocate(n); err != nil {
			t.Fatal(err)
		}
	}
	_, err := a.Allocate("c")
	if !errors.Is(err, ErrExhausted) {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{`"c"`, "2 containers", "idmap.count"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	t.Log(err)
}

func TestPersistence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "idmap.json")
	r1, err := Open(path, testPool).Allocate("one")
	if err != nil {
		t.Fatal(err)
	}
	b := Open(path, testPool)
	if got, ok, err := b.Lookup("one"); err != nil || !ok || got != r1 {
		t.Fatalf("Lookup after reopen = %v, %v, %v", got, ok, err)
	}
	if r2, err := b.Allocate("two"); err != nil || r2 == r1 {
		t.Fatalf("Allocate after reopen = %v, %v", r2, err)
	}
	// No temporary files are left next to the table.
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "idmap.json" && e.Name() != "idmap.json.lock" {
			t.Errorf("leftover file %s", e.Name())
		}
	}
}

func TestPoolChangeKeepsAllocations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "idmap.json")
	old := Pool{First: 100000, Size: 65536, Count: 10}
	a := Open(path, old)
	var held []Range
	for i := range 3 {
		r, err := a.Allocate(fmt.Sprintf("old%d", i))
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, r)
	}
	// The new pool starts half a range later and uses smaller ranges: the old
	// allocations straddle its ranges and one lies outside it entirely.
	moved := Pool{First: 100000 + 65536/2, Size: 1000, Count: 1000}
	b := Open(path, moved)
	if r, ok, err := b.Lookup("old0"); err != nil || !ok || r != held[0] {
		t.Fatalf("old allocation after pool change = %v, %v, %v", r, ok, err)
	}
	for i := range 50 {
		r, err := b.Allocate(fmt.Sprintf("new%d", i))
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range held {
			if r.Overlaps(h) {
				t.Fatalf("new range %v overlaps old %v", r, h)
			}
		}
		held = append(held, r)
	}
}

func TestCorruptFile(t *testing.T) {
	for name, content := range map[string]string{
		"not json":      "{\n  \"version\": 1,\n  \"allocations\": {oops}\n}\n",
		"empty":         "",
		"unknown field": `{"version": 1, "allocations": {}, "extra": 1}`,
		"version":       `{"version": 9, "allocations": {}}`,
		"overlap":       `{"version": 1, "allocations": {"a": {"host_id": 100, "size": 10}, "b": {"host_id": 105, "size": 10}}}`,
		"zero size":     `{"version": 1, "allocations": {"a": {"host_id": 100, "size": 0}}}`,
		"negative":      `{"version": 1, "allocations": {"a": {"host_id": -1, "size": 10}}}`,
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "idmap.json")
			if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			a := Open(path, testPool)
			_, err := a.Allocate("x")
			if err == nil || !strings.Contains(err.Error(), path) {
				t.Fatalf("Allocate on a damaged file: %v", err)
			}
			if _, err := a.List(); err == nil {
				t.Fatal("List on a damaged file: no error")
			}
			if err := a.Release("a"); err == nil {
				t.Fatal("Release on a damaged file: no error")
			}
			after, _ := os.ReadFile(path)
			if string(after) != content {
				t.Fatal("the damaged file was rewritten")
			}
			t.Log(err)
		})
	}
}

func TestConcurrentAllocators(t *testing.T) {
	path := filepath.Join(t.TempDir(), "idmap.json")
	const workers, each = 20, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := Open(path, testPool) // its own lock file descriptions
			for i := range each {
				if _, err := a.Allocate(fmt.Sprintf("g%d-%d", w, i)); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	checkDistinct(t, path, workers*each)
}

func TestConcurrentProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	path := filepath.Join(t.TempDir(), "idmap.json")
	const procs, each = 6, 15
	cmds := make([]*exec.Cmd, procs)
	for p := range procs {
		names := make([]string, each)
		for i := range names {
			names[i] = fmt.Sprintf("p%d-%d", p, i)
		}
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), helperPathEnv+"="+path, helperNamesEnv+"="+strings.Join(names, ","))
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds[p] = cmd
	}
	// Allocate from this process at the same time.
	a := Open(path, testPool)
	for i := range each {
		if _, err := a.Allocate(fmt.Sprintf("self-%d", i)); err != nil {
			t.Error(err)
		}
	}
	for _, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("helper process: %v", err)
		}
	}
	checkDistinct(t, path, (procs+1)*each)
}

// checkDistinct checks that the file holds want allocations, none overlapping.
func checkDistinct(t *testing.T, path string, want int) {
	t.Helper()
	list, err := Open(path, testPool).List()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != want {
		t.Fatalf("%d allocations recorded, want %d", len(list), want)
	}
	byHost := map[uint32]string{}
	for name, r := range list {
		if other, ok := byHost[r.HostID]; ok {
			t.Fatalf("%s and %s share %v", name, other, r)
		}
		byHost[r.HostID] = name
	}
	// Lowest-first allocation packs the ranges: exactly the first want ranges.
	for i := range uint32(want) {
		if _, ok := byHost[testPool.Range(i).HostID]; !ok {
			t.Fatalf("range %d (%v) not allocated", i, testPool.Range(i))
		}
	}
}
