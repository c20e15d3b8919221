package idmap

import "testing"

func FuzzDecodeTable(f *testing.F) {
	f.Add([]byte(`{"version": 1, "allocations": {"a": {"host_id": 100, "size": 10}}}`))
	f.Add([]byte(`{"version": 1, "allocations": {}}`))
	f.Add([]byte(`{"version": 1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tb, err := decodeTable(data)
		if err != nil {
			return
		}
		// Whatever is accepted has no overlaps, so allocating from it is safe.
		for a, ra := range tb.Allocations {
			for b, rb := range tb.Allocations {
				if a != b && ra.Overlaps(rb) {
					t.Fatalf("accepted overlapping %s %v and %s %v", a, ra, b, rb)
				}
			}
		}
		r, ok := DefaultPool.lowestFree(tb.ranges())
		if ok {
			for name, o := range tb.Allocations {
				if o.Overlaps(r) {
					t.Fatalf("lowestFree %v overlaps %s %v", r, name, o)
				}
			}
		}
	})
}
