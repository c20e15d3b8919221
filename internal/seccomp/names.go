package seccomp

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

//go:generate go run ./gen -o zsyscalls_x86_64.go

// syscall is one entry of the system call table.
type syscall struct {
	name string
	nr   uint32
}

// number is the system call number of name, by binary search of the table.
func number(name string) (uint32, bool) {
	i, ok := slices.BinarySearchFunc(syscallsX86_64[:], name, func(s syscall, name string) int {
		return strings.Compare(s.name, name)
	})
	if !ok {
		return 0, false
	}
	return syscallsX86_64[i].nr, true
}

// CheckNames refuses names that are not system calls of this architecture,
// suggesting the closest known name for a typo.
func CheckNames(names []string) error {
	info, err := native()
	if err != nil {
		return err
	}
	for _, name := range names {
		if _, ok := info.SyscallNames[name]; ok {
			continue
		}
		if s := suggest(name, info.SyscallNames); s != "" {
			return fmt.Errorf("%q is not a system call on %s; did you mean %s?", name, info.Name, s)
		}
		return fmt.Errorf("%q is not a system call on %s", name, info.Name)
	}
	return nil
}

// suggest returns the known name closest to name, if it is close enough to
// be a typo (at most a third of its letters differ).
func suggest(name string, known map[string]int) string {
	candidates := make([]string, 0, len(known))
	for k := range known {
		candidates = append(candidates, k)
	}
	sort.Strings(candidates) // a stable answer among equally close names
	best, bestDist := "", len(name)/3+1
	for _, k := range candidates {
		if d := distance(name, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
