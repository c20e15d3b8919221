package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Unprivileged LXC started by root maps ids with newuidmap/newgidmap
// (package uidmap), which refuse unless /etc/subuid and /etc/subgid give root
// a range. The benchmark uses root's first range of 65536 ids or more and, only
// if there is none, adds one (and removes it again at the end).

// containerIDs is the size of a container's id range: all 16-bit ids.
const containerIDs = 65536

// subIDRange is one line of /etc/subuid or /etc/subgid.
type subIDRange struct {
	Owner        string
	Start, Count uint64
}

func (r subIDRange) end() uint64 { return r.Start + r.Count }

// parseSubIDs reads the ranges of a subuid/subgid file, skipping lines it
// does not understand (newuidmap skips them too).
func parseSubIDs(text string) []subIDRange {
	var ranges []subIDRange
	for _, line := range strings.Split(text, "\n") {
		fields := strings.Split(strings.TrimSpace(line), ":")
		if len(fields) != 3 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		start, err1 := strconv.ParseUint(fields[1], 10, 32)
		count, err2 := strconv.ParseUint(fields[2], 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		ranges = append(ranges, subIDRange{Owner: fields[0], Start: start, Count: count})
	}
	return ranges
}

// rootRange returns root's first range of at least 65536 ids.
func rootRange(ranges []subIDRange) (subIDRange, bool) {
	for _, r := range ranges {
		if (r.Owner == "root" || r.Owner == "0") && r.Count >= containerIDs {
			return subIDRange{Owner: r.Owner, Start: r.Start, Count: containerIDs}, true
		}
	}
	return subIDRange{}, false
}

// freeRange returns the first 65536-id range from 100000 (Debian's first
// subordinate id) up that overlaps no existing range.
func freeRange(ranges []subIDRange) subIDRange {
	r := subIDRange{Owner: "root", Start: 100000, Count: containerIDs}
	for moved := true; moved; {
		moved = false
		for _, other := range ranges {
			if r.Start < other.end() && other.Start < r.end() {
				r.Start = other.end()
				moved = true
			}
		}
	}
	return r
}

// subIDGrant is root's range in one file, and the line the benchmark added
// for it ("" if root had a range already).
type subIDGrant struct {
	Path    string
	Range   subIDRange
	Added   string
	existed bool   // whether the file existed before
	before  string // the file before the benchmark changed it
	written string // the file as the benchmark wrote it
}

// ensureRootRange finds or adds root's range in path.
func ensureRootRange(path string) (subIDGrant, error) {
	data, err := os.ReadFile(path)
	existed := err == nil
	if err != nil && !os.IsNotExist(err) {
		return subIDGrant{}, err
	}
	ranges := parseSubIDs(string(data))
	if r, ok := rootRange(ranges); ok {
		return subIDGrant{Path: path, Range: r}, nil
	}
	r := freeRange(ranges)
	if r.end() > lodgeIDFirst {
		return subIDGrant{}, fmt.Errorf("%s: no free range for root below lodge's benchmark ids (%d)", path, lodgeIDFirst)
	}
	line := fmt.Sprintf("root:%d:%d", r.Start, r.Count)
	text := string(data)
	if text != "" && !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	text += line + "\n"
	if err := writeFileAtomic(path, text); err != nil {
		return subIDGrant{}, fmt.Errorf("add %q to %s: %w", line, path, err)
	}
	return subIDGrant{Path: path, Range: r, Added: line, existed: existed, before: string(data), written: text}, nil
}

// undo removes the line ensureRootRange added: it restores the file as it
// was if nobody else changed it since, else removes just that line.
func (g subIDGrant) undo() error {
	if g.Added == "" {
		return nil
	}
	data, err := os.ReadFile(g.Path)
	if err != nil {
		return err
	}
	if string(data) == g.written {
		if !g.existed {
			return os.Remove(g.Path)
		}
		return writeFileAtomic(g.Path, g.before)
	}
	lines := strings.SplitAfter(string(data), "\n")
	for i, l := range lines {
		if strings.TrimSpace(l) == g.Added {
			return writeFileAtomic(g.Path, strings.Join(append(lines[:i:i], lines[i+1:]...), ""))
		}
	}
	return nil
}

// writeFileAtomic replaces path with text, keeping its mode (0644 if new).
func writeFileAtomic(path, text string) error {
	mode := os.FileMode(0o644)
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm()
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".lodge-bench-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(text); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
