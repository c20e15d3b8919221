package main

import (
	"math"
	"slices"
)

// summary is what the report shows of a set of samples.
type summary struct {
	N      int
	Median float64
	P90    float64
}

// summarize returns the median and the 90th percentile (nearest rank) of
// values; N is 0 when there are none.
func summarize(values []float64) summary {
	if len(values) == 0 {
		return summary{}
	}
	sorted := slices.Clone(values)
	slices.Sort(sorted)
	return summary{N: len(sorted), Median: median(sorted), P90: nearestRank(sorted, 0.9)}
}

// median of sorted values: the middle one, or the mean of the two middle ones.
func median(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// nearestRank is the p-quantile of sorted values by the nearest-rank method:
// the smallest value with at least p of the values at or below it.
func nearestRank(sorted []float64, p float64) float64 {
	rank := int(math.Ceil(p * float64(len(sorted))))
	return sorted[max(rank, 1)-1]
}

func mean(values []float64) float64 {
	if len(values) == 0 {
		return 0
	}
	sum := 0.0
	for _, v := range values {
		sum += v
	}
	return sum / float64(len(values))
}
