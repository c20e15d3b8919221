package idmap

import (
	"math"
	"testing"
)

func TestRange(t *testing.T) {
	r := Range{HostID: 524288, Size: 65536}
	if got := r.String(); got != "524288-589823" {
		t.Errorf("String = %q", got)
	}
	for _, c := range []struct {
		id   uint32
		host uint32
		ok   bool
	}{{0, 524288, true}, {65535, 589823, true}, {65536, 0, false}, {math.MaxUint32, 0, false}} {
		host, ok := r.ToHost(c.id)
		if host != c.host || ok != c.ok {
			t.Errorf("ToHost(%d) = %d, %v; want %d, %v", c.id, host, ok, c.host, c.ok)
		}
	}
	for _, c := range []struct {
		host uint32
		want bool
	}{{524287, false}, {524288, true}, {589823, true}, {589824, false}} {
		if got := r.Contains(c.host); got != c.want {
			t.Errorf("Contains(%d) = %v", c.host, got)
		}
	}
	if id, ok := r.ToContainer(524290); id != 2 || !ok {
		t.Errorf("ToContainer(524290) = %d, %v", id, ok)
	}
	if got := r.MapLine(); got != "0 524288 65536\n" {
		t.Errorf("MapLine = %q", got)
	}
	if m := r.IDMap(); len(m) != 1 || m[0].HostID != 524288 || m[0].Size != 65536 || m[0].ContainerID != 0 {
		t.Errorf("IDMap = %+v", m)
	}
	// A range ending at the top of the id space must not wrap.
	top := Range{HostID: math.MaxUint32 - 9, Size: 10}
	if !top.Contains(math.MaxUint32) || top.Contains(0) {
		t.Errorf("top range containment wrong")
	}
}

func TestOverlaps(t *testing.T) {
	a := Range{HostID: 100, Size: 10}
	for _, c := range []struct {
		b    Range
		want bool
	}{
		{Range{90, 10}, false},
		{Range{90, 11}, true},
		{Range{109, 1}, true},
		{Range{110, 5}, false},
		{Range{0, 1000}, true},
		{Range{105, 1}, true},
	} {
		if got := a.Overlaps(c.b); got != c.want {
			t.Errorf("%v.Overlaps(%v) = %v", a, c.b, got)
		}
		if got := c.b.Overlaps(a); got != c.want {
			t.Errorf("%v.Overlaps(%v) = %v", c.b, a, got)
		}
	}
}

func TestPoolValidate(t *testing.T) {
	if err := DefaultPool.Validate(); err != nil {
		t.Fatalf("default pool: %v", err)
	}
	for _, p := range []Pool{
		{First: 0, Size: 65536, Count: 1},
		{First: 1, Size: 0, Count: 1},
		{First: 1, Size: 1, Count: 0},
		{First: 524288, Size: 65536, Count: 70000},
	} {
		if err := p.Validate(); err == nil {
			t.Errorf("%+v: no error", p)
		}
	}
}

func TestLowestFree(t *testing.T) {
	p := Pool{First: 1000, Size: 100, Count: 5}
	for _, c := range []struct {
		name string
		used []Range
		want Range
		ok   bool
	}{
		{"empty", nil, Range{1000, 100}, true},
		{"first taken", []Range{{1000, 100}}, Range{1100, 100}, true},
		{"hole", []Range{{1000, 100}, {1200, 100}}, Range{1100, 100}, true},
		{"outside the pool below", []Range{{0, 1000}}, Range{1000, 100}, true},
		{"old range straddling two", []Range{{1050, 100}}, Range{1200, 100}, true},
		{"old big range blocks the rest", []Range{{1000, 100}, {1150, 300}}, Range{}, false},
		{"full", []Range{{1000, 100}, {1100, 100}, {1200, 100}, {1300, 100}, {1400, 100}}, Range{}, false},
		{"unsorted", []Range{{1300, 100}, {1000, 100}, {1100, 100}}, Range{1200, 100}, true},
	} {
		got, ok := p.lowestFree(c.used)
		if got != c.want || ok != c.ok {
			t.Errorf("%s: got %v, %v; want %v, %v", c.name, got, ok, c.want, c.ok)
		}
	}
}
