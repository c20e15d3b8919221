package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// limitControllers are the controllers Limits use, in the order Apply sets them.
var limitControllers = []string{"memory", "cpu", "cpuset", "pids"}

// Apply sets the group's limits; fields left zero are reset to unlimited. A
// limit whose controller no hierarchy offers is an ErrUnsupported error that
// names its config key; a value the kernel rejects is an error naming the
// file, the value and what to change.
func (g *Group) Apply(l Limits) error {
	if g.err != nil {
		return g.err
	}
	if err := l.Validate(); err != nil {
		return fmt.Errorf("limits of %s: %w", g.name, err)
	}
	if d, ok := g.dirFor("memory"); ok && d.h.Version == 1 {
		if err := checkV1(l); err != nil {
			return fmt.Errorf("limits of %s: %w", g.name, err)
		}
	}
	v1, v2 := renderV1(l, g.v1State()), renderV2(l)
	// Refuse before writing anything.
	for _, c := range limitControllers {
		if _, ok := g.dirFor(c); !ok {
			if err := g.unsupported(c, v2); err != nil {
				return err
			}
		}
	}
	for _, c := range limitControllers {
		d, ok := g.dirFor(c)
		if !ok {
			continue
		}
		writes := v2
		if d.h.Version == 1 {
			writes = v1
		}
		for _, w := range writes {
			if w.Controller != c {
				continue
			}
			if err := g.apply(d, w); err != nil {
				return fmt.Errorf("limits of %s: %w", g.name, err)
			}
		}
	}
	return nil
}

// unsupported returns the error for a limit set on controller c, which no
// hierarchy offers, or nil if none of c's limits is set.
func (g *Group) unsupported(c string, writes []write) error {
	for _, w := range writes {
		if w.Controller == c && w.Set {
			avail := strings.Join(g.host.Controllers(), " ")
			if avail == "" {
				avail = "none"
			}
			return fmt.Errorf("limits of %s: %s is set but no cgroup hierarchy of this host offers the %s controller "+
				"(available: %s); unset %s or enable the controller: %w", g.name, w.Key, c, avail, w.Key, ErrUnsupported)
		}
	}
	return nil
}

// v1State reads what the v1 writes depend on. Values it cannot read are left
// empty: the writes that use them then fail with a clear error.
func (g *Group) v1State() v1State {
	st := v1State{Memsw: -1}
	if d, ok := g.dirFor("cpuset"); ok && d.h.Version == 1 {
		st.ParentCpus, _ = readFile(filepath.Join(d.parent, "cpuset.cpus"))
		st.ParentMems, _ = readFile(filepath.Join(d.parent, "cpuset.mems"))
	}
	if d, ok := g.dirFor("memory"); ok && d.h.Version == 1 {
		if v, err := readInt(filepath.Join(d.path, "memory.memsw.limit_in_bytes")); err == nil {
			st.Memsw = v
		}
	}
	return st
}

// apply does one write.
func (g *Group) apply(d groupDir, w write) error {
	path := filepath.Join(d.path, w.File)
	err := writeFile(path, w.Value)
	if err == nil {
		return nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		if !exists(d.path) {
			return fmt.Errorf("cgroup %s does not exist (not created, or destroyed)", d.path)
		}
		if !w.Set {
			return nil // nothing asked for; the kernel lacks the file (e.g. no swap accounting)
		}
		return fmt.Errorf("%s is set but this host's cgroup has no %s (%s): %w", w.Key, w.File, missingHint(w), ErrUnsupported)
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err // the path is in the message already
	}
	return fmt.Errorf("%s: write %q to %s: %w; %s", w.Key, w.Value, path, err, g.writeHint(d, w, err))
}

func missingHint(w write) string {
	if w.Key == KeySwap {
		return "swap accounting is off: boot the host with swapaccount=1, or unset " + KeySwap
	}
	return "its controller is not enabled for lodge's cgroup; unset " + w.Key
}

// writeHint says what to change after the kernel rejected a write.
func (g *Group) writeHint(d groupDir, w write, err error) string {
	switch {
	case errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM):
		return "lodge needs root (and a writable cgroup) to set limits"
	case w.Key == KeyCpuset && (errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ERANGE)):
		avail := g.availableCpus(d)
		return fmt.Sprintf("%s must name CPUs this host has and lodge's cgroup allows (%s)", KeyCpuset, avail)
	case w.Key == KeyMemory && errors.Is(err, unix.EBUSY):
		return fmt.Sprintf("the container uses more memory than that and the kernel could not reclaim it; raise %s", KeyMemory)
	case w.Key == KeySwap:
		return fmt.Sprintf("check %s and %s", KeyMemory, KeySwap)
	}
	return "check " + w.Key
}

// availableCpus describes the CPUs the group may use, for messages.
func (g *Group) availableCpus(d groupDir) string {
	file := "cpuset.cpus"
	if d.h.Version == 2 {
		file = "cpuset.cpus.effective"
	}
	if v, err := readFile(filepath.Join(d.parent, file)); err == nil && v != "" {
		return "here: " + v
	}
	return "see /sys/devices/system/cpu/online"
}
