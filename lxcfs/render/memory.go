package render

import (
	"fmt"
	"strings"

	"lodge/lxcfs/cgstats"
)

// memView is a container's memory in kB, derived once so that meminfo and
// swaps agree.
type memView struct {
	Total, Free, Available, Cached uint64
	SwapTotal, SwapFree            uint64
}

// pageKB is the smallest MemTotal shown: a limit of 0 still prints a
// positive total (ps and free divide by it).
const pageKB = 4

func newMemView(host map[string]uint64, m cgstats.Memory) memView {
	var v memView
	v.Total = host["MemTotal"]
	if m.Limit != cgstats.Unlimited && kB(m.Limit) < v.Total {
		v.Total = kB(m.Limit)
	}
	v.Total = max(v.Total, pageKB)
	usage := min(kB(m.Usage), v.Total)
	v.Free = v.Total - usage
	// Page cache is charged to the container but is not "used": the
	// kernel reclaims it before the container hits its limit. Shared
	// memory is in the page cache but cannot be reclaimed.
	v.Cached = min(kB(m.File), usage)
	reclaimable := kB(sub(m.File, m.Shmem) + m.SlabReclaimable)
	v.Available = min(v.Total, v.Free+reclaimable)

	// Swap: the container's share, where the kernel accounts it; none
	// shown where it does not (the host's would be a lie).
	if m.SwapAccounted {
		v.SwapTotal = host["SwapTotal"]
		if m.SwapLimit != cgstats.Unlimited {
			v.SwapTotal = min(v.SwapTotal, kB(m.SwapLimit))
		}
		v.SwapFree = sub(v.SwapTotal, kB(m.SwapUsage))
	}
	return v
}

// Meminfo renders /proc/meminfo: the host's file with every line that
// describes the container's memory replaced by its cgroup's numbers.
func Meminfo(host string, m cgstats.Memory) string {
	hv := hostValues(host)
	v := newMemView(hv, m)
	set := map[string]uint64{
		"MemTotal":          v.Total,
		"MemFree":           v.Free,
		"MemAvailable":      v.Available,
		"Buffers":           0,
		"Cached":            v.Cached,
		"SwapCached":        0,
		"Active":            kB(m.ActiveAnon + m.ActiveFile),
		"Inactive":          kB(m.InactiveAnon + m.InactiveFile),
		"Active(anon)":      kB(m.ActiveAnon),
		"Inactive(anon)":    kB(m.InactiveAnon),
		"Active(file)":      kB(m.ActiveFile),
		"Inactive(file)":    kB(m.InactiveFile),
		"Unevictable":       kB(m.Unevictable),
		"Mlocked":           0,
		"SwapTotal":         v.SwapTotal,
		"SwapFree":          v.SwapFree,
		"Dirty":             kB(m.Dirty),
		"Writeback":         kB(m.Writeback),
		"AnonPages":         kB(m.Anon),
		"Mapped":            kB(m.Mapped),
		"Shmem":             kB(m.Shmem),
		"KReclaimable":      kB(m.SlabReclaimable),
		"Slab":              kB(m.SlabReclaimable + m.SlabUnreclaimable),
		"SReclaimable":      kB(m.SlabReclaimable),
		"SUnreclaim":        kB(m.SlabUnreclaimable),
		"KernelStack":       kB(m.KernelStack),
		"PageTables":        kB(m.PageTables),
		"Zswap":             0,
		"Zswapped":          0,
		"AnonHugePages":     0,
		"ShmemHugePages":    0,
		"ShmemPmdMapped":    0,
		"FileHugePages":     0,
		"FilePmdMapped":     0,
		"SecPageTables":     0,
		"NFS_Unstable":      0,
		"Bounce":            0,
		"WritebackTmp":      0,
		"HardwareCorrupted": 0,
	}
	var sb strings.Builder
	for _, line := range strings.Split(strings.TrimRight(host, "\n"), "\n") {
		key, _, ok := strings.Cut(line, ":")
		if n, known := set[key]; ok && known {
			line = replaceValue(line, key, n)
		}
		sb.WriteString(line)
		sb.WriteByte('\n')
	}
	return sb.String()
}

// Swaps renders /proc/swaps: one virtual device of the container's swap, or
// only the header when it has none.
func Swaps(hostMeminfo string, m cgstats.Memory) string {
	v := newMemView(hostValues(hostMeminfo), m)
	text := "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
	if v.SwapTotal > 0 {
		text += fmt.Sprintf("%-40s%s\t\t%d\t\t%d\t\t%d\n", "none", "virtual", v.SwapTotal, v.SwapTotal-v.SwapFree, -2)
	}
	return text
}
