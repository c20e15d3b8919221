// Package render turns a container's cgroup numbers (from lxcfs/cgstats)
// and the host's own /proc text into the text of the container's /proc and
// /sys views. Every function is pure: numbers in, text out, so that golden
// tests pin the output for cgroup v1, v2 and hybrid inputs.
//
// One rule keeps the files consistent with each other: every CPU count and
// every per-CPU line comes from VisibleCPUs, and every time comes from the
// container's start.
package render

import (
	"fmt"
	"strconv"
	"strings"

	"lodge/lxcfs/cgstats"
)

// VisibleCPUs returns the host CPUs a container sees, in the order it
// numbers them 0, 1, ...: its cpuset, cut down to the CPU quota (rounded
// up) when quotaView is set. Never empty.
func VisibleCPUs(cpu cgstats.CPU, quotaView bool) []int {
	cpus := cpu.Cpuset
	if len(cpus) == 0 {
		cpus = []int{0}
	}
	if quotaView && cpu.Quota != cgstats.Unlimited && cpu.Period > 0 {
		n := int((cpu.Quota + cpu.Period - 1) / cpu.Period)
		cpus = cpus[:max(1, min(n, len(cpus)))]
	}
	return cpus
}

// CPUList is the list file for n CPUs numbered from 0 ("0", "0-3"), the
// content of /sys/devices/system/cpu/{online,possible,present}.
func CPUList(n int) string {
	if n <= 1 {
		return "0"
	}
	return "0-" + strconv.Itoa(n-1)
}

// Cpuinfo keeps the host's cpuinfo blocks of the visible CPUs, in order,
// numbered from 0, with the topology fields saying one package of n cores.
func Cpuinfo(host string, cpu cgstats.CPU, quotaView bool) string {
	blocks := map[int]string{}
	for _, block := range strings.Split(strings.TrimRight(host, "\n"), "\n\n") {
		if n, ok := processorNumber(block); ok {
			blocks[n] = block
		}
	}
	visible := VisibleCPUs(cpu, quotaView)
	var sb strings.Builder
	i := 0
	for _, hostCPU := range visible {
		block, ok := blocks[hostCPU]
		if !ok {
			continue
		}
		sb.WriteString(renumberBlock(block, i, len(visible)))
		sb.WriteString("\n\n")
		i++
	}
	return sb.String()
}

// processorNumber finds "processor : N" in a cpuinfo block.
func processorNumber(block string) (int, bool) {
	for _, line := range strings.Split(block, "\n") {
		key, value, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(key) == "processor" {
			n, err := strconv.Atoi(strings.TrimSpace(value))
			return n, err == nil
		}
	}
	return 0, false
}

// renumberBlock rewrites the numbering and topology lines of one block;
// programs that count cores from "core id" or "cpu cores" then agree with
// the processor count.
func renumberBlock(block string, i, n int) string {
	lines := strings.Split(block, "\n")
	for j, line := range lines {
		key, _, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var value int
		switch strings.TrimSpace(key) {
		case "processor", "core id", "apicid", "initial apicid":
			value = i
		case "physical id":
			value = 0
		case "siblings", "cpu cores":
			value = n
		default:
			continue
		}
		lines[j] = key + ": " + strconv.Itoa(value)
	}
	return strings.Join(lines, "\n")
}

// hostValues parses "Key: value kB" lines (meminfo) into kB by key.
func hostValues(text string) map[string]uint64 {
	out := map[string]uint64{}
	for _, line := range strings.Split(text, "\n") {
		key, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		if n, err := strconv.ParseUint(f[0], 10, 64); err == nil {
			out[key] = n
		}
	}
	return out
}

// kB converts bytes to kB.
func kB(bytes uint64) uint64 { return bytes / 1024 }

func sub(a, b uint64) uint64 {
	if b > a {
		return 0
	}
	return a - b
}

// replaceValue puts kb into a "Key:    123 kB" line, right-aligned where
// the host's number ended, so the columns stay as the kernel laid them out.
func replaceValue(line, key string, kb uint64) string {
	width := len(strings.TrimSuffix(line, " kB")) - len(key) - 1
	return fmt.Sprintf("%s:%*d kB", key, max(width, 1), kb)
}
