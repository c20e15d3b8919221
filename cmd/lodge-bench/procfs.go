package main

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// parentPID reads PPid from /proc/PID/status.
func parentPID(pid int) (int, error) {
	fields, err := readKeyValues(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	ppid, ok := fields["PPid"]
	if !ok {
		return 0, fmt.Errorf("/proc/%d/status has no PPid", pid)
	}
	return int(ppid), nil
}

// readKeyValues parses "Key:   value [kB]" lines (status, meminfo,
// smaps_rollup) into numbers; lines without a number are skipped.
func readKeyValues(path string) (map[string]uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	values := map[string]uint64{}
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		key, rest, ok := strings.Cut(scanner.Text(), ":")
		fields := strings.Fields(rest)
		if !ok || len(fields) == 0 {
			continue
		}
		if v, err := strconv.ParseUint(fields[0], 10, 64); err == nil {
			values[key] = v
		}
	}
	return values, scanner.Err()
}

// processMemory is one process's memory from /proc/PID/smaps_rollup, in KiB.
type processMemory struct {
	Pss, Rss, PrivateDirty uint64
}

func readProcessMemory(pid int) (processMemory, error) {
	v, err := readKeyValues(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return processMemory{}, err
	}
	if _, ok := v["Pss"]; !ok {
		return processMemory{}, fmt.Errorf("/proc/%d/smaps_rollup has no Pss", pid)
	}
	return processMemory{Pss: v["Pss"], Rss: v["Rss"], PrivateDirty: v["Private_Dirty"]}, nil
}

// hostMemory is the host's used memory, in KiB: Uncorrected is MemTotal -
// MemAvailable from /proc/meminfo (memory the kernel could not hand out
// without swapping, kernel objects included); Used is that minus the free
// pages parked on per-CPU lists. Those count as used in meminfo, and the
// kernel sizes them on the fly (tens of MiB here): freed pages go there and
// are handed out again first, so without the correction starting a few
// containers can even "free" memory.
type hostMemory struct {
	Used, Uncorrected uint64
}

func readHostMemory() (hostMemory, error) {
	v, err := readKeyValues("/proc/meminfo")
	if err != nil {
		return hostMemory{}, err
	}
	total, ok1 := v["MemTotal"]
	avail, ok2 := v["MemAvailable"]
	if !ok1 || !ok2 {
		return hostMemory{}, fmt.Errorf("/proc/meminfo lacks MemTotal or MemAvailable")
	}
	pcp, err := perCPUFreeKiB()
	if err != nil {
		return hostMemory{}, err
	}
	used := total - avail
	return hostMemory{Used: used - min(pcp, used), Uncorrected: used}, nil
}

// perCPUFreeKiB sums the "count:" of every per-CPU page set in
// /proc/zoneinfo: free pages held on per-CPU lists.
func perCPUFreeKiB() (uint64, error) {
	data, err := os.ReadFile("/proc/zoneinfo")
	if err != nil {
		return 0, err
	}
	var pages uint64
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 2 && fields[0] == "count:" {
			n, err := strconv.ParseUint(fields[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/zoneinfo: %q", line)
			}
			pages += n
		}
	}
	return pages * uint64(os.Getpagesize()) / 1024, nil
}

// rootMount describes the root filesystem as process pid sees it.
type rootMount struct {
	FSType   string
	Idmapped bool
}

// readRootMount finds the mount at "/" in /proc/PID/mountinfo (the last one
// wins: it is on top). The kernel lists "idmapped" among the mount options of
// an idmapped mount.
func readRootMount(pid int) (rootMount, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		return rootMount{}, err
	}
	var m rootMount
	found := false
	for _, line := range strings.Split(string(data), "\n") {
		before, after, ok := strings.Cut(line, " - ")
		fields, rest := strings.Fields(before), strings.Fields(after)
		if !ok || len(fields) < 6 || len(rest) < 1 || fields[4] != "/" {
			continue
		}
		found = true
		m = rootMount{FSType: rest[0], Idmapped: hasOption(fields[5], "idmapped")}
	}
	if !found {
		return m, fmt.Errorf("no root mount in /proc/%d/mountinfo", pid)
	}
	return m, nil
}

func hasOption(options, want string) bool {
	for _, o := range strings.Split(options, ",") {
		if o == want {
			return true
		}
	}
	return false
}

// readIDMap returns the first line of /proc/PID/uid_map, fields single-spaced.
func readIDMap(pid int, file string) (string, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, file))
	if err != nil {
		return "", err
	}
	first, _, _ := strings.Cut(strings.TrimSpace(string(data)), "\n")
	return strings.Join(strings.Fields(first), " "), nil
}

// cgroupDirsNamed lists directories called name in every cgroup hierarchy,
// down to a few levels below our own cgroups.
func cgroupDirsNamed(name string) []string {
	var found []string
	filepath.WalkDir("/sys/fs/cgroup", func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if strings.Count(path, "/") > 9 {
			return fs.SkipDir
		}
		if d.Name() == name {
			found = append(found, path)
			return fs.SkipDir
		}
		return nil
	})
	return found
}

// removeCgroupTree removes an (empty of processes) cgroup directory and the
// ones below it, deepest first.
func removeCgroupTree(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeCgroupTree(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return os.Remove(dir)
}

// mountsUnder lists mount points at or below dir in our mount namespace.
func mountsUnder(dir string) []string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var found []string
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			found = append(found, fields[4])
		}
	}
	return found
}

func trimOutput(s string) string { return strings.TrimSpace(s) }
