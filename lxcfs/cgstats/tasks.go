package cgstats

import (
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
)

// ReadTasks lists the thread ids in a container's cgroup tree, at most max
// of them (truncated is then true), from the pids or memory v1 hierarchy or
// else cgroup2.
func ReadTasks(cg Cgroups, max int) (tids []int, truncated bool, err error) {
	dir, file := "", "tasks"
	for _, c := range []string{"pids", "memory", "cpuacct"} {
		if d, ok := cg.v1Dir(c); ok {
			dir = d
			break
		}
	}
	if dir == "" {
		d, ok := cg.v2Dir("cgroup.threads")
		if !ok {
			return nil, false, ErrNoController
		}
		dir, file = d, "cgroup.threads"
	}
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // a cgroup removed while walking
		}
		if !d.IsDir() {
			return nil
		}
		s, rerr := readString(path, file)
		if rerr != nil {
			return nil
		}
		for _, f := range strings.Fields(s) {
			if len(tids) == max {
				truncated = true
				return filepath.SkipAll
			}
			if tid, err := strconv.Atoi(f); err == nil {
				tids = append(tids, tid)
			}
		}
		return nil
	})
	return tids, truncated, err
}
