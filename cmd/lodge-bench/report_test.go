package main

import (
	"strings"
	"testing"

	"lodge/lxcfs/server"
)

func TestVerdicts(t *testing.T) {
	tests := []struct {
		name         string
		r            row
		ratio, judge string
	}{
		{"memory below LXC", row{Kind: memory, Lodge: []float64{0.5, 0.4, 0.6}, LXC: []float64{1.2, 1.3, 1.2}, Target: targetNoLarger}, "0.42x of LXC", "PASS"},
		{"memory above LXC", row{Kind: memory, Lodge: []float64{2, 2, 2}, LXC: []float64{1, 1, 1}, Target: targetNoLarger}, "2.00x of LXC", "MISS"},
		// The case of issue 9: the host's used memory fell while
		// containers started; a negative cost is noise, never a PASS.
		{"negative memory median", row{Kind: memory, Lodge: []float64{-0.49, -0.2, 0.1}, LXC: []float64{1.26, 1.2, 1.3}, Target: targetNoLarger}, "n/a", "n/a"},
		{"one negative memory reading", row{Kind: memory, Lodge: []float64{0.5, -0.1, 0.6}, LXC: []float64{1.2, 1.3, 1.2}, Target: targetNoLarger}, "n/a", "n/a"},
		{"negative LXC memory", row{Kind: memory, Lodge: []float64{0.5}, LXC: []float64{-1}, Target: targetNoLarger}, "n/a", "n/a"},
		{"zero memory", row{Kind: memory, Lodge: []float64{0}, LXC: []float64{1}, Target: targetNoLarger}, "n/a", "n/a"},
		{"latency 2x faster", row{Kind: latency, Lodge: []float64{10, 11, 9}, LXC: []float64{20, 22, 18}, Target: targetFaster2x}, "2.00x faster", "PASS"},
		{"latency slower", row{Kind: latency, Lodge: []float64{30}, LXC: []float64{20}, Target: targetFaster2x}, "0.67x faster", "MISS"},
		{"zero latency", row{Kind: latency, Lodge: []float64{0, 10}, LXC: []float64{20, 20}, Target: targetFaster2x}, "n/a", "n/a"},
		{"no LXC samples", row{Kind: latency, Lodge: []float64{10}, Target: targetFaster2x}, "n/a", "n/a"},
		{"throughput near the veth pair", row{Kind: throughput, Lodge: []float64{9.6}, LXC: []float64{10}, Target: targetNearVeth}, "0.96x as fast", "PASS"},
		{"throughput below the veth pair", row{Kind: throughput, Lodge: []float64{9}, LXC: []float64{10}, Target: targetNearVeth}, "0.90x as fast", "MISS"},
		{"round trip near the veth pair", row{Kind: roundTrip, Lodge: []float64{100}, LXC: []float64{96}, Target: targetNearVeth}, "0.96x as fast", "PASS"},
		{"round trip far above the veth pair", row{Kind: roundTrip, Lodge: []float64{120}, LXC: []float64{96}, Target: targetNearVeth}, "0.80x as fast", "MISS"},
		{"informational", row{Kind: memory, Lodge: []float64{1}, LXC: []float64{2}}, "0.50x of LXC", "-"},
		{"informational, implausible", row{Kind: memory, Lodge: []float64{-1}, LXC: []float64{2}}, "n/a", "-"},
	}
	for _, tt := range tests {
		if got := tt.r.ratioText(); got != tt.ratio {
			t.Errorf("%s: ratio %q, want %q", tt.name, got, tt.ratio)
		}
		if got := tt.r.verdict(); got != tt.judge {
			t.Errorf("%s: verdict %q, want %q", tt.name, got, tt.judge)
		}
	}
}

// A row whose lodge side could not be measured says so, and why, in the
// lodge column and neither passes nor misses.
func TestUnavailableRow(t *testing.T) {
	r := row{Metric: "m", Kind: throughput, LXC: []float64{10}, Target: targetNearVeth,
		Unavailable: "lodge container net1 has no eth0 after start: exit status 1"}
	cells := r.cells()
	if !strings.HasPrefix(cells[1], "not available: lodge container net1 has no eth0") || cells[len(cells)-1] != "n/a" {
		t.Errorf("cells %q", cells)
	}
}

// A row whose LXC side could not be measured says so, and why, in the LXC
// column, and neither passes nor misses.
func TestLXCUnavailableRow(t *testing.T) {
	r := row{Metric: "m", Kind: latency, Lodge: []float64{300}, Target: targetNoSlower,
		LXCUnavailable: "lxc-checkpoint -r: exit status 1: tty: Unable to find a master for /4"}
	cells := r.cells()
	if cells[1] != "300.00 ms" || !strings.HasPrefix(cells[2], "not available: lxc-checkpoint -r: exit status 1") || cells[3] != "n/a" || cells[len(cells)-1] != "n/a" {
		t.Errorf("cells %q", cells)
	}
}

// An absolute aim (lodge's median under a bound) passes or misses even
// when LXC's side could not be measured.
func TestLXCUnavailableAbsoluteAim(t *testing.T) {
	aim := &target{Text: "< 400 ms", MaxLodge: 400}
	for _, c := range []struct {
		lodge float64
		want  string
	}{{300, "PASS"}, {500, "MISS"}} {
		r := row{Metric: "m", Kind: latency, Lodge: []float64{c.lodge}, Target: aim, LXCUnavailable: "checkpoint fails"}
		if cells := r.cells(); cells[len(cells)-1] != c.want {
			t.Errorf("lodge %.0f ms: cells %q, want %s", c.lodge, cells, c.want)
		}
	}
}

func TestImplausibleNotes(t *testing.T) {
	rows := []row{
		{Metric: "host used memory per container", Kind: memory, Lodge: []float64{0.5, -0.49}, LXC: []float64{1.26}, Target: targetNoLarger},
		{Metric: "monitor PSS per container", Kind: memory, Lodge: []float64{0.06}, LXC: []float64{0.63}, Target: targetNoLarger},
	}
	notes := implausibleNotes(rows)
	if len(notes) != 1 || !strings.Contains(notes[0], "host used memory per container") || !strings.Contains(notes[0], "-0.49 MiB") {
		t.Errorf("notes %q, want one about the negative host memory reading", notes)
	}
	if cells := rows[0].cells(); cells[len(cells)-1] != "n/a" {
		t.Errorf("the table's result cell is %q, want n/a", cells[len(cells)-1])
	}
}

// TestViewSpecs: every cached one-reader row is followed by its uncached
// row, whose reads pause longer than the server's cache interval.
func TestViewSpecs(t *testing.T) {
	specs := viewSpecs()
	seen := map[string]bool{}
	uncached := 0
	for i, s := range specs {
		if seen[s.metric()] {
			t.Errorf("two rows named %q", s.metric())
		}
		seen[s.metric()] = true
		if s.pause == 0 {
			continue
		}
		uncached++
		if s.pause <= server.CacheTTL {
			t.Errorf("%s: pause %v is not longer than the cache interval %v", s.metric(), s.pause, server.CacheTTL)
		}
		if i == 0 || specs[i-1].file != s.file || specs[i-1].pause != 0 || specs[i-1].readers != 1 {
			t.Errorf("%s does not follow its cached row", s.metric())
		}
		if args := s.args("/procread"); args[len(args)-1] != "150" || !strings.HasSuffix(s.metric(), ", uncached") {
			t.Errorf("%s: procread %q", s.metric(), args)
		}
	}
	if uncached != len(viewFiles) {
		t.Errorf("%d uncached rows, want one per file (%d)", uncached, len(viewFiles))
	}
	if args := specs[0].args("/procread"); len(args) != 4 {
		t.Errorf("a cached read passes a pause: %q", args)
	}
}
