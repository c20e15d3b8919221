package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// group is a set of related benchmarks that run together and share a
// section of the report. To add one, write a file with a constructor like
// startGroup and list it in groups.
type group struct {
	Name  string // for -only
	Title string // section heading
	Run   func(b *bench) (*groupResult, error)
}

// groups lists the benchmark groups in the order they run and are reported.
func groups() []group {
	return []group{
		startGroup(),
		execGroup(),
		gracefulStopGroup(),
		memoryGroup(),
		debianGroup(),
		viewsGroup(),
		storageGroup(),
		networkGroup(),
		freezeGroup(),
		checkpointGroup(),
		migrationGroup(),
		densityGroup(),
	}
}

// selectGroups returns the groups named in only (comma-separated; all if
// empty).
func selectGroups(only string) ([]group, error) {
	all := groups()
	if only == "" {
		return all, nil
	}
	var names []string
	for _, g := range all {
		names = append(names, g.Name)
	}
	var picked []group
	for _, name := range strings.Split(only, ",") {
		i := slices.Index(names, strings.TrimSpace(name))
		if i < 0 {
			return nil, fmt.Errorf("-only %q: no such group; groups: %s", name, strings.Join(names, ", "))
		}
		picked = append(picked, all[i])
	}
	return picked, nil
}

// inTurn calls fn for each item, rounds times. The order rotates every round
// so that each item goes first equally often and they share the machine's
// noise (with two items, they simply alternate).
func inTurn[T any](b *bench, rounds int, items []T, fn func(round int, item T) error) error {
	for round := range rounds {
		for j := range items {
			if err := b.ctx.Err(); err != nil {
				return err
			}
			if err := fn(round, items[(j+round)%len(items)]); err != nil {
				return err
			}
		}
	}
	return nil
}

// samples collects one metric's measurements per subject ("lodge", "LXC",
// "host").
type samples map[string][]float64

func (s samples) addDuration(subject string, d time.Duration) {
	s[subject] = append(s[subject], float64(d.Microseconds())/1000)
}

func (s samples) add(subject string, v float64) {
	s[subject] = append(s[subject], v)
}
