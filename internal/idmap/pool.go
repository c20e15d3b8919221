package idmap

import (
	"errors"
	"fmt"
	"math"
	"sort"
)

// Pool is the set of ranges containers are given, from the host config:
// Count consecutive ranges of Size ids starting at host id First.
type Pool struct {
	First uint32 // idmap.first
	Size  uint32 // idmap.size
	Count uint32 // idmap.count
}

// DefaultPool leaves the first 524288 host ids to the host and gives each of
// up to 27000 containers 65536 ids, ending below 2^31.
var DefaultPool = Pool{First: 524288, Size: 65536, Count: 27000}

// Validate checks that the pool is usable: non-empty, above host root, and
// within the 32-bit id space.
func (p Pool) Validate() error {
	switch {
	case p.Size == 0:
		return errors.New("idmap.size must be at least 1 (65536 gives a container a full id space)")
	case p.Count == 0:
		return errors.New("idmap.count must be at least 1")
	case p.First == 0:
		return errors.New("idmap.first must be above 0: container root must never be host root")
	}
	// Keep the last id below 2^32-1, which the kernel reserves as "no id".
	if end := uint64(p.First) + uint64(p.Size)*uint64(p.Count); end > math.MaxUint32 {
		return fmt.Errorf("idmap.first + idmap.size*idmap.count = %d exceeds the id space (%d); lower idmap.count", end, uint64(math.MaxUint32))
	}
	return nil
}

// Range is the pool's range number i, counting from 0.
func (p Pool) Range(i uint32) Range {
	return Range{HostID: p.First + i*p.Size, Size: p.Size}
}

// lowestFree returns the lowest pool range that overlaps no range in used, and
// false when there is none. Used may hold ranges outside the pool or of another
// size (left by an older pool config); it is sorted in place.
func (p Pool) lowestFree(used []Range) (Range, bool) {
	sort.Slice(used, func(i, j int) bool { return used[i].HostID < used[j].HostID })
	next := 0
	for i := uint64(0); i < uint64(p.Count); {
		c := p.Range(uint32(i))
		// Skip used ranges wholly below the candidate.
		for next < len(used) && used[next].end() <= uint64(c.HostID) {
			next++
		}
		if next == len(used) || !used[next].Overlaps(c) {
			return c, true
		}
		// Jump to the first pool range that starts at or after its end.
		i = p.indexAtOrAfter(used[next].end())
	}
	return Range{}, false
}

// indexAtOrAfter is the index of the first pool range starting at or after host id end.
func (p Pool) indexAtOrAfter(end uint64) uint64 {
	if end <= uint64(p.First) {
		return 0
	}
	off := end - uint64(p.First)
	return (off + uint64(p.Size) - 1) / uint64(p.Size)
}
