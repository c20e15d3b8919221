package manager

import "testing"

func TestReservingCreator(t *testing.T) {
	for _, c := range []struct {
		name string
		pid  int
		ok   bool
	}{
		{".reserving-web-1234.5678-99887766", 1234, true},
		{".reserving-my-web-1-42.7-1", 42, true},
		{".reserving-web-99887766", 0, false}, // before creators were named
		{".reserving-web-x.y-1", 0, false},
	} {
		p, ok := reservingCreator(c.name)
		if ok != c.ok || p.PID != c.pid {
			t.Errorf("reservingCreator(%q) = %+v, %v; want pid %d, %v", c.name, p, ok, c.pid, c.ok)
		}
	}
}
