package tests

import (
	"bufio"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// What the host holds, read straight from the kernel: tests check that lodge
// leaves none of it behind.

// cgroupDirs lists cgroup directories named parent (or parent/name) in any hierarchy.
func cgroupDirs(parent, name string) []string {
	want := "/" + parent
	if name != "" {
		want += "/" + name
	}
	var found []string
	filepath.WalkDir("/sys/fs/cgroup", func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if strings.Count(path, "/") > 9 {
			return fs.SkipDir
		}
		if strings.HasSuffix(path, want) {
			found = append(found, path)
			return fs.SkipDir
		}
		return nil
	})
	return found
}

// removeCgroupParent removes a test's cgroup base (lodge keeps it, and its
// .monitor, once made) where no group is left in it.
func removeCgroupParent(parent string) {
	for _, dir := range cgroupDirs(parent, "") {
		os.Remove(filepath.Join(dir, ".monitor"))
		os.Remove(dir)
	}
}

// cgroupsLeft lists the groups of container name (BASE/name and its
// monitor's BASE/.monitor/name), or of any container for "", in the test's
// base on every hierarchy.
func cgroupsLeft(parent, name string) []string {
	var left []string
	for _, dir := range cgroupDirs(parent, "") {
		for _, sub := range []string{dir, filepath.Join(dir, ".monitor")} {
			entries, _ := os.ReadDir(sub)
			for _, e := range entries {
				if e.IsDir() && e.Name() != ".monitor" && (name == "" || e.Name() == name) {
					left = append(left, filepath.Join(sub, e.Name()))
				}
			}
		}
	}
	return left
}

// waitEmpty calls list until it returns nothing, for at most 10 seconds, and
// returns its last result: for what a process on its way out still holds.
func waitEmpty[T any](list func() []T) []T {
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := list()
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mountsUnder lists mount points below dir in this mount namespace.
func mountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var found []string
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			found = append(found, fields[4])
		}
	}
	return found
}

// processesOf lists processes that belong to the env at root: lodge processes
// with root on their command line, and processes in its containers' cgroups.
func processesOf(root, name string) []string {
	entries, _ := os.ReadDir("/proc")
	self := strconv.Itoa(os.Getpid())
	var found []string
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil || e.Name() == self {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		args := strings.Split(string(cmdline), "\x00")
		if !strings.HasPrefix(args[0], "lodge") || !containsArg(args, root) {
			continue
		}
		if name == "" || containsArg(args, name) {
			found = append(found, e.Name()+": "+strings.Join(args, " "))
		}
	}
	return found
}

func containsArg(args []string, want string) bool {
	for _, a := range args {
		if a == want {
			return true
		}
	}
	return false
}

// processesInCgroup lists pids whose cgroup path (any hierarchy) contains part.
// Zombies are not counted: they run nothing and wait for their parent (the
// host's init, for a container whose monitor was killed) to reap them.
func processesInCgroup(part string) []int {
	return liveProcesses("cgroup", func(data string) bool { return strings.Contains(data, part) })
}

// liveProcesses lists the pids, zombies left out, whose /proc/PID/file
// matches.
func liveProcesses(file string, match func(data string) bool) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || isZombie(pid) {
			continue
		}
		data, _ := os.ReadFile(filepath.Join("/proc", e.Name(), file))
		if match(string(data)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// hostUID returns the real uid of a host process.
func hostUID(pid int) (int, error) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if fields := strings.Fields(line); len(fields) > 1 && fields[0] == "Uid:" {
			return strconv.Atoi(fields[1])
		}
	}
	return 0, os.ErrNotExist
}

func isZombie(pid int) bool {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return true // gone
	}
	text := string(data)
	end := strings.LastIndexByte(text, ')')
	return end < 0 || end+2 >= len(text) || text[end+2] == 'Z'
}
