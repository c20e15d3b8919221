package cgroup

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// MountInfo is one line of /proc/PID/mountinfo.
type MountInfo struct {
	ID, Parent   int
	Root         string   // the path inside the filesystem that is mounted here
	Mountpoint   string   // where, unescaped
	FSType       string   // "cgroup", "cgroup2", ...
	Source       string   // "cgroup", "none", ...
	SuperOptions []string // e.g. ["rw", "cpu", "cpuacct"] or ["rw", "name=systemd"]
}

// ParseMountinfo parses the mountinfo format of proc(5):
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
func ParseMountinfo(r io.Reader) ([]MountInfo, error) {
	var out []MountInfo
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" {
			continue
		}
		m, err := parseMountinfoLine(line)
		if err != nil {
			return nil, fmt.Errorf("mountinfo line %d: %w: %q", n, err, line)
		}
		out = append(out, m)
	}
	return out, sc.Err()
}

func parseMountinfoLine(line string) (MountInfo, error) {
	fields := strings.Fields(line)
	sep := -1
	for i := 6; i < len(fields); i++ {
		if fields[i] == "-" {
			sep = i
			break
		}
	}
	if len(fields) < 10 || sep < 0 || len(fields) < sep+4 {
		return MountInfo{}, fmt.Errorf("malformed")
	}
	id, err1 := strconv.Atoi(fields[0])
	parent, err2 := strconv.Atoi(fields[1])
	if err1 != nil || err2 != nil {
		return MountInfo{}, fmt.Errorf("bad mount id")
	}
	return MountInfo{
		ID:           id,
		Parent:       parent,
		Root:         unescapeOctal(fields[3]),
		Mountpoint:   unescapeOctal(fields[4]),
		FSType:       fields[sep+1],
		Source:       unescapeOctal(fields[sep+2]),
		SuperOptions: strings.Split(fields[sep+3], ","),
	}, nil
}

// unescapeOctal undoes the kernel's \ooo escapes of space, tab, newline and
// backslash in mountinfo paths.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1:i+4]) {
			v, _ := strconv.ParseUint(s[i+1:i+4], 8, 8)
			b.WriteByte(byte(v))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '7' {
			return false
		}
	}
	return len(s) == 3
}

// ProcCgroup is one line of /proc/PID/cgroup: the process's cgroup in one
// hierarchy.
type ProcCgroup struct {
	ID          int      // hierarchy id; 0 is the cgroup2 hierarchy
	Controllers []string // v1 controllers bound to the hierarchy; none for cgroup2 and named hierarchies
	Name        string   // v1 named hierarchy ("systemd" for name=systemd)
	Path        string   // the cgroup, relative to the reader's cgroup namespace root
}

// Unified reports whether the line is the cgroup2 hierarchy.
func (p ProcCgroup) Unified() bool { return p.ID == 0 && len(p.Controllers) == 0 && p.Name == "" }

// Key names the line's hierarchy as Hierarchy.Key does.
func (p ProcCgroup) Key() string {
	switch {
	case p.Unified():
		return UnifiedKey
	case len(p.Controllers) > 0:
		return strings.Join(p.Controllers, ",")
	}
	return p.Name
}

// ParseProcCgroup parses /proc/PID/cgroup:
//
//	4:memory:/process_api/740444d88440b64805c19a211403055c
//	1:name=systemd:/
//	0::/user.slice
func ParseProcCgroup(r io.Reader) ([]ProcCgroup, error) {
	var out []ProcCgroup
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" {
			continue
		}
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			return nil, fmt.Errorf("/proc/PID/cgroup line %d: malformed: %q", n, line)
		}
		id, err := strconv.Atoi(parts[0])
		if err != nil || id < 0 {
			return nil, fmt.Errorf("/proc/PID/cgroup line %d: bad hierarchy id: %q", n, line)
		}
		pc := ProcCgroup{ID: id, Path: parts[2]}
		for _, c := range strings.Split(parts[1], ",") {
			switch {
			case c == "":
			case strings.HasPrefix(c, "name="):
				pc.Name = strings.TrimPrefix(c, "name=")
			default:
				pc.Controllers = append(pc.Controllers, c)
			}
		}
		if id != 0 && len(pc.Controllers) == 0 && pc.Name == "" {
			return nil, fmt.Errorf("/proc/PID/cgroup line %d: v1 hierarchy without controllers or name: %q", n, line)
		}
		out = append(out, pc)
	}
	return out, sc.Err()
}
