package bootorder

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
)

// chainAndFanOut: db <- api <- (web1, web2, web3); cache alone; worker after db and cache.
func chainAndFanOut() *Graph {
	return New(map[string][]string{
		"db": nil, "cache": nil,
		"api":    {"db"},
		"web1":   {"api"},
		"web2":   {"api"},
		"web3":   {"api"},
		"worker": {"db", "cache"},
	})
}

func TestLevels(t *testing.T) {
	levels, err := chainAndFanOut().Levels()
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"cache", "db"}, {"api", "worker"}, {"web1", "web2", "web3"}}
	if !reflect.DeepEqual(levels, want) {
		t.Fatalf("levels %v, want %v", levels, want)
	}
}

func TestCycle(t *testing.T) {
	for _, tc := range []struct {
		after map[string][]string
		want  string
	}{
		{map[string][]string{"a": {"b"}, "b": {"a"}}, "a -> b -> a"},
		{map[string][]string{"a": {"a"}}, "a -> a"},
		{map[string][]string{"a": {"b"}, "b": {"c"}, "c": {"b"}, "d": nil}, "b -> c -> b"},
		{map[string][]string{"a": {"b", "zz"}, "b": nil}, ""}, // unknown names are no cycle
	} {
		g := New(tc.after)
		if got := FormatCycle(g.Cycle()); got != tc.want {
			t.Errorf("%v: cycle %q, want %q", tc.after, got, tc.want)
		}
		_, err := g.Levels()
		var ce *CycleError
		if (tc.want != "") != errors.As(err, &ce) {
			t.Errorf("%v: Levels error %v", tc.after, err)
		}
	}
}

func TestCheck(t *testing.T) {
	err := New(map[string][]string{"web": {"db"}}).Check()
	if err == nil || !strings.Contains(err.Error(), `boot.after of web names "db", which is not a container here`) {
		t.Errorf("unknown name: %v", err)
	}
	err = New(map[string][]string{"a": {"b"}, "b": {"a"}}).Check()
	if err == nil || !strings.Contains(err.Error(), "a -> b -> a") || !strings.Contains(err.Error(), "lodge config set") {
		t.Errorf("cycle: %v", err)
	}
	if err := chainAndFanOut().Check(); err != nil {
		t.Error(err)
	}
}

func TestNeedsAndDependents(t *testing.T) {
	g := chainAndFanOut()
	if got := g.Needs([]string{"web1", "nosuch"}); !reflect.DeepEqual(got, []string{"api", "db", "web1"}) {
		t.Errorf("needs %v", got)
	}
	if got := g.Dependents("db"); !reflect.DeepEqual(got, []string{"api", "worker"}) {
		t.Errorf("dependents %v", got)
	}
	if got := g.Unknown(); got != nil {
		t.Errorf("unknown %v", got)
	}
}

// trace records the order of steps, and which ran at the same time.
type trace struct {
	mu      sync.Mutex
	order   []string
	running int
	most    int
	fail    map[string]bool
	hold    chan struct{} // steps wait here until closed, so that parallel ones overlap
}

func (tr *trace) step(_ context.Context, name string) error {
	tr.mu.Lock()
	tr.order = append(tr.order, name)
	tr.running++
	tr.most = max(tr.most, tr.running)
	tr.mu.Unlock()
	if tr.hold != nil {
		<-tr.hold
	}
	tr.mu.Lock()
	tr.running--
	tr.mu.Unlock()
	if tr.fail[name] {
		return fmt.Errorf("%s failed", name)
	}
	return nil
}

func (tr *trace) before(a, b string) bool {
	return slices.Index(tr.order, a) < slices.Index(tr.order, b)
}

func TestRunOrder(t *testing.T) {
	g := chainAndFanOut()
	tr := &trace{}
	out := Run(context.Background(), Plan{Graph: g, Parallel: 4, Step: tr.step})
	for _, n := range g.Names() {
		if !out[n].OK() {
			t.Errorf("%s: %+v", n, out[n])
		}
		for _, dep := range g.After(n) {
			if !tr.before(dep, n) {
				t.Errorf("%s ran before %s, which it starts after: %v", n, dep, tr.order)
			}
		}
	}
	tr = &trace{}
	Run(context.Background(), Plan{Graph: g, Reverse: true, Parallel: 4, Step: tr.step})
	for _, n := range g.Names() {
		for _, dep := range g.After(n) {
			if !tr.before(n, dep) {
				t.Errorf("reverse: %s stopped before %s, which starts after it: %v", dep, n, tr.order)
			}
		}
	}
}

// TestRunParallel: the three of a fan-out run at once, and never more than Parallel.
func TestRunParallel(t *testing.T) {
	g := New(map[string][]string{"a": nil, "b": nil, "c": nil, "d": nil})
	for _, parallel := range []int{1, 2, 4} {
		tr := &trace{hold: make(chan struct{})}
		done := make(chan map[string]Outcome)
		go func() { done <- Run(context.Background(), Plan{Graph: g, Parallel: parallel, Step: tr.step}) }()
		// Wait until as many steps as allowed have begun, then let them all go.
		for {
			tr.mu.Lock()
			n := tr.running
			tr.mu.Unlock()
			if n == parallel {
				break
			}
			runtime.Gosched()
		}
		close(tr.hold)
		<-done
		if tr.most != parallel {
			t.Errorf("parallel %d: at most %d ran at once", parallel, tr.most)
		}
	}
}

func TestRunFailureSkipsDependentsOnly(t *testing.T) {
	g := chainAndFanOut()
	var mu sync.Mutex
	told := map[string]string{}
	tr := &trace{fail: map[string]bool{"db": true}}
	out := Run(context.Background(), Plan{Graph: g, Parallel: 2, Step: tr.step,
		Skip: func(n, why string) { mu.Lock(); told[n] = why; mu.Unlock() }})
	if out["db"].Err == nil {
		t.Errorf("db: %+v", out["db"])
	}
	if !out["cache"].OK() {
		t.Errorf("cache, unrelated, did not run: %+v", out["cache"])
	}
	for _, n := range []string{"api", "worker"} {
		if want := "it starts after db, which failed"; out[n].Skipped != want || told[n] != want {
			t.Errorf("%s: %+v, told %q", n, out[n], told[n])
		}
	}
	if want := "it starts after api, which was skipped"; out["web2"].Skipped != want {
		t.Errorf("web2: %+v", out["web2"])
	}
	// KeepGoing: at shutdown a failed stop holds nothing up.
	tr = &trace{fail: map[string]bool{"web1": true}}
	out = Run(context.Background(), Plan{Graph: g, Reverse: true, KeepGoing: true, Parallel: 2, Step: tr.step})
	for _, n := range g.Names() {
		if out[n].Skipped != "" {
			t.Errorf("keep going: %s skipped: %s", n, out[n].Skipped)
		}
	}
}

func TestRunUnknownAndCycle(t *testing.T) {
	g := New(map[string][]string{"a": {"b"}, "b": {"a"}, "c": {"a"}, "d": {"gone"}, "e": nil})
	tr := &trace{}
	out := Run(context.Background(), Plan{Graph: g, Parallel: 2, Step: tr.step})
	if !reflect.DeepEqual(tr.order, []string{"e"}) {
		t.Errorf("ran %v, want only e", tr.order)
	}
	for _, n := range []string{"a", "b", "c"} {
		if !strings.Contains(out[n].Skipped, "a -> b -> a") {
			t.Errorf("%s: %+v", n, out[n])
		}
	}
	if out["d"].Skipped != "boot.after names gone, which is not a container here" {
		t.Errorf("d: %+v", out["d"])
	}
}

func TestRunCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	g := New(map[string][]string{"a": nil, "b": {"a"}})
	out := Run(ctx, Plan{Graph: g, Parallel: 1, KeepGoing: true, Step: func(context.Context, string) error { cancel(); return nil }})
	if !out["a"].OK() || !strings.HasPrefix(out["b"].Skipped, "interrupted") {
		t.Errorf("%+v", out)
	}
}

// TestRunLongestChainFirst: with one slot, the head of the longest chain
// goes first, whatever its name.
func TestRunLongestChainFirst(t *testing.T) {
	g := New(map[string][]string{"a": nil, "b": nil, "z": nil, "y": {"z"}, "x": {"y"}})
	tr := &trace{}
	Run(context.Background(), Plan{Graph: g, Parallel: 1, Step: tr.step})
	if tr.order[0] != "z" {
		t.Errorf("order %v: z, at the head of z <- y <- x, should go first", tr.order)
	}
	tr = &trace{}
	Run(context.Background(), Plan{Graph: g, Reverse: true, Parallel: 1, Step: tr.step})
	if tr.order[0] != "x" {
		t.Errorf("reverse order %v: x, at the head of x -> y -> z, should go first", tr.order)
	}
}
