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
// report are zero. Every figure covers the group and its descendants (a
// systemd guest's own sub-groups), as the kernel counts them.
type Stats struct {
	MemoryUsage int64         // bytes in use, page cache included
	MemoryLimit int64         // bytes; 0 = unlimited
	SwapUsage   int64         // bytes swapped out; 0 also when the kernel does not account swap
	CPUUsage    time.Duration // CPU time used since the group was created
	Pids        int64         // tasks in the group
	PidsLimit   int64         // 0 = unlimited
	OOMKills    int64         // processes the OOM killer killed in the group
	IORead      int64         // bytes read from block devices
	IOWrite     int64         // bytes written to block devices
}

// Stats reads the group's resource use: a few small control files per
// controller, no walk of sub-groups (the kernel's counters are hierarchical).
func (g *Group) Stats() (Stats, error) {
	var s Stats
	var errs []error
	g.memoryStats(&s, &errs)
	if d, ok := g.dirFor("cpuacct"); ok {
		s.CPUUsage = time.Duration(readStat(d, "cpuacct.usage", &errs))
	} else if d, ok := g.unified(); ok {
		// cgroup2 reports usage_usec in cpu.stat even without the cpu controller.
		s.CPUUsage = readCPUStat(d, &errs)
	}
	if d, ok := g.dirFor("pids"); ok {
		s.Pids = readStat(d, "pids.current", &errs)
		s.PidsLimit = max(readStat(d, "pids.max", &errs), 0) // "max" reads as -1
	}
	g.ioStats(&s, &errs)
	if err := errors.Join(errs...); err != nil {
		return s, fmt.Errorf("stats of cgroup %s: %w", g.name, err)
	}
	return s, nil
}

// memoryStats fills the memory, swap and OOM figures from cgroup2's
// memory.* files or v1's.
func (g *Group) memoryStats(s *Stats, errs *[]error) {
	d, ok := g.dirFor("memory")
	if !ok {
		return
	}
	if d.h.Version == 2 {
		s.MemoryUsage = readStat(d, "memory.current", errs)
		s.MemoryLimit = max(readStat(d, "memory.max", errs), 0)
		s.SwapUsage = readStat(d, "memory.swap.current", errs)
		s.OOMKills = readKeyed(d, "memory.events", "oom_kill", errs)
		return
	}
	s.MemoryUsage = readStat(d, "memory.usage_in_bytes", errs)
	if s.MemoryLimit = readStat(d, "memory.limit_in_bytes", errs); s.MemoryLimit >= unlimitedV1 {
		s.MemoryLimit = 0
	}
	// memsw counts memory and swap together; it exists only with swap
	// accounting on (swapaccount=1).
	if both := readStat(d, "memory.memsw.usage_in_bytes", errs); both > s.MemoryUsage {
		s.SwapUsage = both - s.MemoryUsage
	}
	// v1 counts a kill in the victim's own group only (a systemd guest's
	// service), not in its ancestors: sum the container's subtree.
	kills, err := g.OOMKills()
	if err != nil {
		*errs = append(*errs, err)
	}
	s.OOMKills = int64(kills)
}

// ioStats fills the block I/O bytes from cgroup2's io.stat or v1's blkio
// throttle counters (kept by every I/O scheduler, unlike blkio.io_*).
func (g *Group) ioStats(s *Stats, errs *[]error) {
	if d, ok := g.dirFor("io"); ok && d.h.Version == 2 {
		data, ok := readOptional(d, "io.stat", errs)
		if ok {
			s.IORead, s.IOWrite = parseIOStat(data)
		}
		return
	}
	d, ok := g.dirFor("blkio")
	if !ok {
		return
	}
	// The _recursive file counts the sub-groups too; kernels before 4.3
	// lack it.
	data, ok := readOptional(d, "blkio.throttle.io_service_bytes_recursive", errs)
	if !ok {
		data, ok = readOptional(d, "blkio.throttle.io_service_bytes", errs)
	}
	if ok {
		s.IORead, s.IOWrite = parseBlkioServiceBytes(data)
	}
}

func readStat(d groupDir, file string, errs *[]error) int64 {
	v, err := readInt(filepath.Join(d.path, file))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		*errs = append(*errs, err)
	}
	return v
}

// readOptional reads a control file the kernel may not offer; ok is false
// when it is missing or unreadable (the error is kept unless missing).
func readOptional(d groupDir, file string, errs *[]error) (string, bool) {
	data, err := readFile(filepath.Join(d.path, file))
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			*errs = append(*errs, err)
		}
		return "", false
	}
	return data, true
}

// readKeyed reads one value of a flat keyed file ("key value" lines).
func readKeyed(d groupDir, file, key string, errs *[]error) int64 {
	data, ok := readOptional(d, file, errs)
	if !ok {
		return 0
	}
	return parseKeyed(data, key)
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
	return time.Duration(parseKeyed(data, "usage_usec")) * time.Microsecond
}

// parseKeyed returns the value of key in a flat keyed file such as
// cpu.stat, memory.events or v1's memory.oom_control; 0 if absent.
func parseKeyed(data, key string) int64 {
	for _, line := range strings.Split(data, "\n") {
		if k, v, ok := strings.Cut(line, " "); ok && k == key {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// parseIOStat sums the bytes read and written over the devices of
// cgroup2's io.stat: "MAJ:MIN rbytes=N wbytes=N rios=N ..." per line.
func parseIOStat(data string) (read, write int64) {
	for _, line := range strings.Split(data, "\n") {
		fields := strings.Fields(line)
		for _, f := range fields[min(1, len(fields)):] {
			k, v, _ := strings.Cut(f, "=")
			n, _ := strconv.ParseInt(v, 10, 64)
			switch k {
			case "rbytes":
				read += n
			case "wbytes":
				write += n
			}
		}
	}
	return read, write
}

// parseBlkioServiceBytes sums the bytes read and written over the devices
// of v1's blkio.throttle.io_service_bytes: "MAJ:MIN Read N" lines per
// operation and device, then a "Total N" line without a device.
func parseBlkioServiceBytes(data string) (read, write int64) {
	for _, line := range strings.Split(data, "\n") {
		fields := strings.Fields(line)
		if len(fields) != 3 {
			continue
		}
		n, _ := strconv.ParseInt(fields[2], 10, 64)
		switch fields[1] {
		case "Read":
			read += n
		case "Write":
			write += n
		}
	}
	return read, write
}
