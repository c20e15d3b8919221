package templates

import (
	"context"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// TestLockExcludesAndLeavesNothing: the image lock, whose file is removed by
// each holder, still lets one holder in at a time, and no file stays behind.
func TestLockExcludesAndLeavesNothing(t *testing.T) {
	s := &Images{Dir: t.TempDir()}
	var inside, overlaps atomic.Int32
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				unlock, err := s.lock(context.Background(), "img", Silent{})
				if err != nil {
					t.Error(err)
					return
				}
				if inside.Add(1) > 1 {
					overlaps.Add(1)
				}
				for range 10 { // stay inside a while: let the others try
					runtime.Gosched()
				}
				inside.Add(-1)
				unlock()
			}
		}()
	}
	wg.Wait()
	if overlaps.Load() > 0 {
		t.Errorf("%d times two holders at once", overlaps.Load())
	}
	if entries, _ := os.ReadDir(s.Dir); len(entries) != 0 {
		t.Errorf("left behind: %v", entries)
	}
	if fi, _ := os.Stat(s.Dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("image cache mode %v, want 0700", fi.Mode())
	}
	if _, err := s.lock(context.Background(), "../x", Silent{}); err == nil {
		t.Errorf("an id with a slash was locked")
	}
}

// TestStagingIsPrivate: the staging directory of a build or import is
// root-only before anything is unpacked into it, in a cache directory made
// root-only too (even one an older lodge left open).
func TestStagingIsPrivate(t *testing.T) {
	s := &Images{Dir: t.TempDir() + "/images"}
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(s.Dir, 0o711)
	dir, err := s.tempDir("img")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{s.Dir, dir} {
		if fi, err := os.Stat(d); err != nil {
			t.Error(err)
		} else if fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v, want 0700", d, fi.Mode())
		}
	}
}
