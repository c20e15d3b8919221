// Package cgstats reads a container's resource accounting from its cgroup
// directories, on cgroup v1, v2 and hybrid hosts, into plain numbers for the
// renderers in lxcfs/render. It only reads files: tests point it at copies.
//
// A container's cgroups are given as a map from hierarchy key to host
// directory, as lodge's runtime state records them: "memory" or
// "cpu,cpuacct" for a v1 hierarchy, "unified" for cgroup2. Each controller
// is read from the v1 hierarchy that has it, else from cgroup2.
package cgstats

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Unlimited is a limit that is not set ("max", or v1's page-rounded
// LONG_MAX).
const Unlimited = ^uint64(0)

// unifiedKey is the map key of the cgroup2 directory.
const unifiedKey = "unified"

// v1Unlimited: v1 reports "no limit" as LONG_MAX rounded down to a page;
// anything this large is no limit.
const v1Unlimited = uint64(1) << 62

// ErrNoController means neither a v1 hierarchy nor cgroup2 offers the
// controller for this container.
var ErrNoController = errors.New("controller not available")

// Cgroups maps hierarchy keys to a container's cgroup directories.
type Cgroups map[string]string

// v1Dir returns the directory of the v1 hierarchy with controller c.
func (cg Cgroups) v1Dir(c string) (string, bool) {
	for key, dir := range cg {
		if key == unifiedKey {
			continue
		}
		for _, k := range strings.Split(key, ",") {
			if k == c {
				return dir, true
			}
		}
	}
	return "", false
}

// v2Dir returns the cgroup2 directory when it has file (so the controller
// is enabled there).
func (cg Cgroups) v2Dir(file string) (string, bool) {
	dir, ok := cg[unifiedKey]
	if !ok {
		return "", false
	}
	if _, err := os.Stat(filepath.Join(dir, file)); err != nil {
		return "", false
	}
	return dir, true
}

// readString returns a cgroup file's content without the trailing newline.
func readString(dir, file string) (string, error) {
	data, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(data)), nil
}

// readUint reads a file holding one number; "max" is Unlimited.
func readUint(dir, file string) (uint64, error) {
	s, err := readString(dir, file)
	if err != nil {
		return 0, err
	}
	if s == "max" {
		return Unlimited, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		// v1 prints -1 for "no limit" in a few files.
		if s == "-1" {
			return Unlimited, nil
		}
		return 0, fmt.Errorf("%s: %q is not a number", filepath.Join(dir, file), s)
	}
	return n, nil
}

// readKeyed reads a "key value" per line file (memory.stat, cpu.stat).
func readKeyed(dir, file string) (map[string]uint64, error) {
	s, err := readString(dir, file)
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		if n, err := strconv.ParseUint(f[1], 10, 64); err == nil {
			out[f[0]] = n
		}
	}
	return out, nil
}

// v1Limit maps v1's huge "no limit" values to Unlimited.
func v1Limit(n uint64) uint64 {
	if n >= v1Unlimited {
		return Unlimited
	}
	return n
}

// sub is a-b, or 0 when b is larger (counters read at slightly different
// moments can cross).
func sub(a, b uint64) uint64 {
	if b > a {
		return 0
	}
	return a - b
}
