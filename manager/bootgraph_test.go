package manager

import (
	"errors"
	"slices"
	"testing"

	"lodge/config"
)

func TestRotateTo(t *testing.T) {
	for _, tc := range []struct {
		cycle []string
		name  string
		want  []string
	}{
		{[]string{"a", "b", "c", "a"}, "b", []string{"b", "c", "a", "b"}},
		{[]string{"a", "b", "a"}, "a", []string{"a", "b", "a"}},
		{[]string{"a", "b", "a"}, "z", []string{"a", "b", "a"}},
	} {
		if got := rotateTo(tc.cycle, tc.name); !slices.Equal(got, tc.want) {
			t.Errorf("rotateTo(%v, %s) = %v, want %v", tc.cycle, tc.name, got, tc.want)
		}
	}
}

// TestGraphOf: a container whose file cannot be read is still a container
// others may name; an override stands in for a container's list.
func TestGraphOf(t *testing.T) {
	web := config.Default()
	web.Boot.After = []string{"db"}
	g := graphOf(map[string]*config.Container{"web": web}, map[string]error{"db": errors.New("broken")}, map[string][]string{"new": {"web"}})
	if !slices.Equal(g.Names(), []string{"db", "new", "web"}) || g.Unknown() != nil || !slices.Equal(g.Dependents("web"), []string{"new"}) {
		t.Errorf("graph: %v, unknown %v", g.Names(), g.Unknown())
	}
}
