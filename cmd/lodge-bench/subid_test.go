package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestRootRange(t *testing.T) {
	ranges := parseSubIDs("alice:100000:65536\nroot:1000:10\n# comment\nbroken\n0:300000:70000\n")
	r, ok := rootRange(ranges)
	if !ok || r.Start != 300000 || r.Count != 65536 {
		t.Errorf("rootRange = %+v, %v; want 300000, 65536", r, ok)
	}
	if _, ok := rootRange(parseSubIDs("alice:100000:65536\n")); ok {
		t.Error("rootRange found a range for root in alice's file")
	}
}

func TestFreeRange(t *testing.T) {
	tests := []struct {
		text  string
		start uint64
	}{
		{"", 100000},
		{"alice:165536:65536\n", 100000},
		{"alice:100000:65536\nbob:165536:65536\n", 231072},
		{"bob:165536:65536\nalice:50000:65536\n", 231072},
	}
	for _, tt := range tests {
		if r := freeRange(parseSubIDs(tt.text)); r.Start != tt.start || r.Count != 65536 {
			t.Errorf("freeRange(%q) = %+v, want start %d", tt.text, r, tt.start)
		}
	}
}

func TestEnsureRootRangeAndUndo(t *testing.T) {
	path := filepath.Join(t.TempDir(), "subuid")
	const before = "alice:100000:65536" // no newline at the end
	if err := os.WriteFile(path, []byte(before), 0o644); err != nil {
		t.Fatal(err)
	}
	g, err := ensureRootRange(path)
	if err != nil {
		t.Fatal(err)
	}
	if g.Added != "root:165536:65536" {
		t.Errorf("added %q", g.Added)
	}
	if again, _ := ensureRootRange(path); again.Added != "" || again.Range.Start != 165536 {
		t.Errorf("second call: %+v", again)
	}
	if err := g.undo(); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(path); string(data) != before {
		t.Errorf("after undo: %q, want %q", data, before)
	}
}

func TestUndoKeepsOthersChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "subgid")
	g, err := ensureRootRange(path)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("bob:300000:65536\n")
	f.Close()
	if err := g.undo(); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(path); string(data) != "bob:300000:65536\n" {
		t.Errorf("after undo: %q", data)
	}
}
