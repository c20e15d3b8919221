// Package bootorder orders containers by their boot.after lists: which start
// first at boot and which stop first at host shutdown, which may run at the
// same time, and what is wrong with a list (a cycle, a name that names no
// container). It is pure logic over names; the manager supplies the lists
// and does the starting and stopping (Run).
package bootorder

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Graph holds, for each container, the containers it starts after (its
// dependencies). Containers are its nodes; a dependency that is not a node
// is unknown.
type Graph struct {
	after map[string][]string
	names []string // the nodes, sorted: every walk is deterministic
}

// New makes a graph from each container's boot.after list. The map is not
// kept: later changes to it do not change the graph.
func New(after map[string][]string) *Graph {
	g := &Graph{after: make(map[string][]string, len(after))}
	for name, deps := range after {
		g.after[name] = slices.Clone(deps)
		g.names = append(g.names, name)
	}
	sort.Strings(g.names)
	return g
}

// Names lists the graph's containers, sorted.
func (g *Graph) Names() []string { return slices.Clone(g.names) }

// Has tells whether name is a container of the graph.
func (g *Graph) Has(name string) bool {
	_, ok := g.after[name]
	return ok
}

// After is name's dependencies as listed (unknown ones included).
func (g *Graph) After(name string) []string { return slices.Clone(g.after[name]) }

// Dependents lists, sorted, the containers whose boot.after names name.
func (g *Graph) Dependents(name string) []string {
	var out []string
	for _, n := range g.names {
		if slices.Contains(g.after[n], name) {
			out = append(out, n)
		}
	}
	return out
}

// Missing is a boot.after entry that names no container.
type Missing struct {
	Container string // whose boot.after it is
	Name      string // the name that is not a container
}

// Unknown lists every boot.after entry that names no container of the
// graph, by container then by position in its list.
func (g *Graph) Unknown() []Missing {
	var out []Missing
	for _, n := range g.names {
		for _, dep := range g.after[n] {
			if !g.Has(dep) {
				out = append(out, Missing{Container: n, Name: dep})
			}
		}
	}
	return out
}

// Cycle returns a cycle of the graph as the path that walks it, the first
// container repeated at the end (a, b, a: a starts after b, which starts
// after a), or nil if there is none. Of several cycles it returns the one
// reached first from the smallest name.
func (g *Graph) Cycle() []string {
	const (
		unvisited = iota
		onPath
		done
	)
	state := map[string]int{}
	var path []string
	var visit func(n string) []string
	visit = func(n string) []string {
		state[n] = onPath
		path = append(path, n)
		for _, dep := range g.after[n] {
			switch {
			case !g.Has(dep):
				continue
			case state[dep] == onPath:
				start := slices.Index(path, dep)
				return append(slices.Clone(path[start:]), dep)
			case state[dep] == unvisited:
				if c := visit(dep); c != nil {
					return c
				}
			}
		}
		path = path[:len(path)-1]
		state[n] = done
		return nil
	}
	for _, n := range g.names {
		if state[n] == unvisited {
			if c := visit(n); c != nil {
				return c
			}
		}
	}
	return nil
}

// FormatCycle writes a cycle as users read it: "a -> b -> a".
func FormatCycle(cycle []string) string { return strings.Join(cycle, " -> ") }

// CycleError is a cycle found in boot.after lists.
type CycleError struct{ Cycle []string }

func (e *CycleError) Error() string {
	return "boot.after has a cycle: " + FormatCycle(e.Cycle) + " (each must start before the next)"
}

// Levels groups the containers into start levels: those of level 0 need
// nothing, those of level k need only containers of lower levels (at least
// one of level k-1). The containers of one level may start at the same
// time; reversed, the levels are a stop order. Unknown dependencies are
// ignored (Unknown reports them). A cycle is an error.
func (g *Graph) Levels() ([][]string, error) {
	if c := g.Cycle(); c != nil {
		return nil, &CycleError{Cycle: c}
	}
	level := map[string]int{}
	var levelOf func(n string) int
	levelOf = func(n string) int {
		if l, ok := level[n]; ok {
			return l
		}
		l := 0
		for _, dep := range g.after[n] {
			if g.Has(dep) {
				l = max(l, levelOf(dep)+1)
			}
		}
		level[n] = l
		return l
	}
	var levels [][]string
	for _, n := range g.names {
		l := levelOf(n)
		for len(levels) <= l {
			levels = append(levels, nil)
		}
		levels[l] = append(levels[l], n)
	}
	return levels, nil
}

// Needs returns roots and every container they need, directly or through
// others, sorted: what must start for roots to start. Unknown names are
// left out.
func (g *Graph) Needs(roots []string) []string {
	seen := map[string]bool{}
	var walk func(n string)
	walk = func(n string) {
		if seen[n] || !g.Has(n) {
			return
		}
		seen[n] = true
		for _, dep := range g.after[n] {
			walk(dep)
		}
	}
	for _, r := range roots {
		walk(r)
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Sub is the graph of only the named containers (those of g among them):
// the edges between them stay, and so do their unknown names (still
// unknown); edges to the containers left out go.
func (g *Graph) Sub(names []string) *Graph {
	after := map[string][]string{}
	keep := map[string]bool{}
	for _, n := range names {
		if g.Has(n) {
			keep[n] = true
		}
	}
	for n := range keep {
		var deps []string
		for _, d := range g.after[n] {
			if keep[d] || !g.Has(d) {
				deps = append(deps, d)
			}
		}
		after[n] = deps
	}
	return New(after)
}

// Check reports the first problem of a set of boot.after lists, for
// `lodge config set`: an unknown name, then a cycle. The error says what
// to do.
func (g *Graph) Check() error {
	if missing := g.Unknown(); len(missing) > 0 {
		m := missing[0]
		return fmt.Errorf("boot.after of %s names %q, which is not a container here; create it first, or remove it from the list", m.Container, m.Name)
	}
	if c := g.Cycle(); c != nil {
		return fmt.Errorf("%w; remove one of these names from its container's boot.after (lodge config set NAME boot.after=...)", &CycleError{Cycle: c})
	}
	return nil
}
