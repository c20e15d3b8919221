package config

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// maxCPU is the highest CPU number accepted. The kernel's own ceiling
// (CONFIG_NR_CPUS) is at most 8192; the bound also stops "0-4000000000"
// from allocating a huge list.
const maxCPU = 8191

// ParseCPUList parses the kernel's CPU list format ("0-3,5" → [0 1 2 3 5]),
// as used by cpuset.cpus and /sys/devices/system/cpu/online. The result is
// sorted and has no duplicates. An empty string is an empty list.
func ParseCPUList(s string) ([]int, error) {
	text := strings.TrimSpace(s)
	if text == "" {
		return nil, nil
	}
	// Marking CPUs in a fixed-size set keeps the work bounded however many
	// overlapping ranges the input repeats.
	var present [maxCPU + 1]bool
	for part := range strings.SplitSeq(text, ",") {
		first, last, err := parseCPURange(strings.TrimSpace(part))
		if err != nil {
			return nil, err
		}
		for cpu := first; cpu <= last; cpu++ {
			present[cpu] = true
		}
	}
	var cpus []int
	for cpu, ok := range present {
		if ok {
			cpus = append(cpus, cpu)
		}
	}
	return cpus, nil
}

// parseCPURange parses "3" or "0-3".
func parseCPURange(part string) (first, last int, err error) {
	lowText, highText, isRange := strings.Cut(part, "-")
	if first, err = parseCPU(lowText); err != nil {
		return 0, 0, err
	}
	if !isRange {
		return first, first, nil
	}
	if last, err = parseCPU(highText); err != nil {
		return 0, 0, err
	}
	if last < first {
		return 0, 0, fmt.Errorf("range %q ends before it starts", part)
	}
	return first, last, nil
}

func parseCPU(text string) (int, error) {
	if !allDigits(text) {
		return 0, fmt.Errorf("%q is not a CPU number", text)
	}
	cpu, err := strconv.Atoi(text)
	if err != nil || cpu > maxCPU {
		return 0, fmt.Errorf("CPU %s is above the limit of %d", text, maxCPU)
	}
	return cpu, nil
}

// FormatCPUList writes CPUs in the kernel's format, runs as ranges:
// [0 1 2 3 5] → "0-3,5". The input need not be sorted or unique.
func FormatCPUList(cpus []int) string {
	sorted := slices.Compact(slices.Sorted(slices.Values(cpus)))
	var parts []string
	for i := 0; i < len(sorted); {
		end := i
		for end+1 < len(sorted) && sorted[end+1] == sorted[end]+1 {
			end++
		}
		parts = append(parts, formatCPURange(sorted[i], sorted[end]))
		i = end + 1
	}
	return strings.Join(parts, ",")
}

func formatCPURange(first, last int) string {
	if first == last {
		return strconv.Itoa(first)
	}
	return strconv.Itoa(first) + "-" + strconv.Itoa(last)
}
