package idmap

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"lodge/internal/rawfile"

	"golang.org/x/sys/unix"
)

// ErrInUse is returned by Release while processes of the container still
// run with ids of its range: freeing it would hand them to the next container.
var ErrInUse = errors.New("is still in use")

// ProcessesIn lists the live processes that use ids of r, read from /proc
// (see ProcessUses): the kernel's answer, whatever lodge's records say.
func ProcessesIn(r Range) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ProcessUses(pid, r) {
			pids = append(pids, pid)
		}
	}
	sort.Ints(pids)
	return pids, nil
}

// ProcessUses reports whether process pid is in a user namespace that maps
// ids of r, or runs with an effective uid or gid in r (the owner of
// /proc/PID). A zombie, or a process that vanished meanwhile, does not. It
// reads little per process: /proc holds hundreds of them.
func ProcessUses(pid int, r Range) bool {
	dir := filepath.Join("/proc", strconv.Itoa(pid))
	var st unix.Stat_t
	if unix.Stat(dir, &st) != nil {
		return false
	}
	if !r.Contains(st.Uid) && !r.Contains(st.Gid) && !mapsRange(filepath.Join(dir, "uid_map"), r) {
		return false
	}
	stat, err := rawfile.Read(filepath.Join(dir, "stat"))
	if err != nil {
		return false
	}
	// The state letter follows the command name, which may hold spaces and ')'.
	end := bytes.LastIndexByte(stat, ')')
	return end >= 0 && end+2 < len(stat) && stat[end+2] != 'Z'
}

// mapsRange reports whether the id map file (as the host reads it: inside id,
// host id, count) maps any host id of r to other ids.
func mapsRange(path string, r Range) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 3 || fields[0] == fields[1] {
			continue // the host's own identity map (0 0 4294967295) maps nothing of r
		}
		host, err1 := strconv.ParseUint(fields[1], 10, 32)
		count, err2 := strconv.ParseUint(fields[2], 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		if host < r.end() && uint64(r.HostID) < host+count {
			return true
		}
	}
	return false
}
