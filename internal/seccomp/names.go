package seccomp

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
)

//go:generate go run ./gen -o zsyscalls_x86_64.go

// syscall is one entry of the system call table.
type syscall struct {
	name string
	nr   uint32
}

// archName is the kernel's name of the one architecture the filter knows.
const archName = "x86_64"

// native checks that lodge runs on the architecture whose system calls the
// table lists: the filter is written for x86_64 (its numbers, its
// little-endian arguments, its 32-bit ABIs to refuse).
func native() error {
	if runtime.GOARCH != "amd64" {
		return fmt.Errorf("seccomp: lodge's filter knows the system calls of %s only, not of %s", archName, runtime.GOARCH)
	}
	return nil
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
	if err := native(); err != nil {
		return err
	}
	for _, name := range names {
		if _, ok := number(name); ok {
			continue
		}
		if s := suggest(name); s != "" {
			return fmt.Errorf("%q is not a system call on %s; did you mean %s?", name, archName, s)
		}
		return fmt.Errorf("%q is not a system call on %s", name, archName)
	}
	return nil
}

// suggest returns the known name closest to name, if it is close enough to
// be a typo (at most a third of its letters differ). The table is sorted, so
// the first of equally close names is a stable answer.
func suggest(name string) string {
	best, bestDist := "", len(name)/3+1
	for _, s := range syscallsX86_64 {
		if d := distance(name, s.name); d < bestDist {
			best, bestDist = s.name, d
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
