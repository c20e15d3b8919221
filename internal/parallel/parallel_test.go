package parallel

import (
	"sync"
	"sync/atomic"
	"testing"
)

func TestForEachCallsEachOnceWithinTheBound(t *testing.T) {
	for _, tc := range []struct{ n, workers int }{{0, 4}, {1, 4}, {10, 1}, {100, 4}, {3, 0}} {
		var mu sync.Mutex
		seen := map[int]int{}
		var running, most atomic.Int32
		ForEach(tc.n, tc.workers, func(i int) {
			now := running.Add(1)
			for {
				m := most.Load()
				if now <= m || most.CompareAndSwap(m, now) {
					break
				}
			}
			mu.Lock()
			seen[i]++
			mu.Unlock()
			running.Add(-1)
		})
		if len(seen) != tc.n {
			t.Errorf("n=%d: called for %d items", tc.n, len(seen))
		}
		for i, c := range seen {
			if c != 1 || i < 0 || i >= tc.n {
				t.Errorf("n=%d: item %d called %d times", tc.n, i, c)
			}
		}
		if bound := int32(max(1, tc.workers)); most.Load() > bound {
			t.Errorf("n=%d workers=%d: %d calls at once", tc.n, tc.workers, most.Load())
		}
	}
}
