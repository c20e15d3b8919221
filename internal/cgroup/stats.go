package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Stats are the group's current resource use. Values the host cannot
// report are zero.
type Stats struct {
	MemoryUsage int64         // bytes in use, page cache included
	MemoryLimit int64         // bytes; 0 = unlimited
	CPUUsage    time.Duration // CPU time used since the group was created
	Pids        int64         // tasks in the group
}

// Stats reads the group's resource use.
func (g *Group) Stats() (Stats, error) {
	var s Stats
	var errs []error
	if d, ok := g.dirFor("memory"); ok {
		use, limit := "memory.current", "memory.max"
		if d.h.Version == 1 {
			use, limit = "memory.usage_in_bytes", "memory.limit_in_bytes"
		}
		s.MemoryUsage = readStat(d, use, &errs)
		if s.MemoryLimit = readStat(d, limit, &errs); s.MemoryLimit < 0 || s.MemoryLimit >= unlimitedV1 {
			s.MemoryLimit = 0
		}
	}
	if d, ok := g.dirFor("cpuacct"); ok {
		s.CPUUsage = time.Duration(readStat(d, "cpuacct.usage", &errs))
	} else if d, ok := g.unified(); ok {
		// cgroup2 reports usage_usec in cpu.stat even without the cpu controller.
		s.CPUUsage = readCPUStat(d, &errs)
	}
	if d, ok := g.dirFor("pids"); ok {
		s.Pids = readStat(d, "pids.current", &errs)
	}
	if err := errors.Join(errs...); err != nil {
		return s, fmt.Errorf("stats of cgroup %s: %w", g.name, err)
	}
	return s, nil
}

func readStat(d groupDir, file string, errs *[]error) int64 {
	v, err := readInt(filepath.Join(d.path, file))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		*errs = append(*errs, err)
	}
	return v
}

func readCPUStat(d groupDir, errs *[]error) time.Duration {
	data, err := readFile(filepath.Join(d.path, "cpu.stat"))
	if err != nil {
		*errs = append(*errs, err)
		return 0
	}
	return parseCPUStatUsage(data)
}

// parseCPUStatUsage reads usage_usec from cgroup2's cpu.stat.
func parseCPUStatUsage(data string) time.Duration {
	for _, line := range strings.Split(data, "\n") {
		if k, v, ok := strings.Cut(line, " "); ok && k == "usage_usec" {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return time.Duration(n) * time.Microsecond
		}
	}
	return 0
}
