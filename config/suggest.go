package config

import (
	"fmt"
	"strings"
)

// maxSuggestDistance is how many typos a name may have and still get a
// suggestion: enough for "memroy" (two edits), not so many that unrelated
// names are offered.
const maxSuggestDistance = 2

// didYouMean returns ` (did you mean "x"?)` for the candidate nearest to
// name, or "" when none is near. A name that only misses its table, like
// "memory" for "limits.memory", is matched by its last element.
func didYouMean(name string, candidates []string) string {
	if best := nearest(name, candidates); best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	if best := sameLastElement(name, candidates); best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return ""
}

// nearest returns the candidate with the smallest edit distance to name,
// ignoring case, if that distance is at most maxSuggestDistance; the first
// one wins a tie.
func nearest(name string, candidates []string) string {
	best, bestDistance := "", maxSuggestDistance+1
	for _, candidate := range candidates {
		d := levenshtein(strings.ToLower(name), strings.ToLower(candidate))
		if candidate != name && d < bestDistance {
			best, bestDistance = candidate, d
		}
	}
	return best
}

// sameLastElement returns the only candidate whose last dotted element
// equals name's last element, or "" if there is none or more than one.
func sameLastElement(name string, candidates []string) string {
	last := name[strings.LastIndex(name, ".")+1:]
	found := ""
	for _, candidate := range candidates {
		if candidate != name && candidate[strings.LastIndex(candidate, ".")+1:] == last {
			if found != "" {
				return ""
			}
			found = candidate
		}
	}
	return found
}

// levenshtein counts the single-character insertions, deletions and
// substitutions that turn a into b, keeping one row of the usual table.
func levenshtein(a, b string) int {
	source, target := []rune(a), []rune(b)
	row := make([]int, len(target)+1)
	for j := range row {
		row[j] = j
	}
	for i := 1; i <= len(source); i++ {
		diagonal := row[0]
		row[0] = i
		for j := 1; j <= len(target); j++ {
			cost := 1
			if source[i-1] == target[j-1] {
				cost = 0
			}
			above := row[j]
			row[j] = min(row[j]+1, row[j-1]+1, diagonal+cost)
			diagonal = above
		}
	}
	return row[len(target)]
}
