package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"lodge/internal/atomicfile"
	"lodge/internal/cgroup"
	"lodge/internal/rawfile"
)

// Status is a container's lifecycle state as users see it.
type Status string

// The states `lodge list` reports.
const (
	Stopped  Status = "STOPPED"
	Starting Status = "STARTING"
	Running  Status = "RUNNING"
	Stopping Status = "STOPPING"
	Frozen   Status = "FROZEN"
)

// Process identifies a process across pid reuse: its pid and its start time in
// clock ticks since boot (field 22 of /proc/PID/stat).
type Process struct {
	PID   int    `json:"pid"`
	Start uint64 `json:"start"`
}

// State is what a running container's monitor records in ROOT/run/NAME.json.
// It lets every lodge command find the container's processes without the
// monitor, so list, stop and exec still work if the monitor was killed.
type State struct {
	Name      string    `json:"name"`
	Status    Status    `json:"status"`
	Init      Process   `json:"init"`
	Monitor   Process   `json:"monitor"`
	StartedAt time.Time `json:"started_at"`
	// UptimeBase is how long the container had run before StartedAt: the
	// uptime recorded in the checkpoint it was restored from (0 after a
	// boot). The views' /proc/uptime counts from StartedAt minus it, as the
	// clocks of the container's time namespace, restored by CRIU, do.
	UptimeBase time.Duration     `json:"uptime_base,omitempty"`
	StopSignal int               `json:"stop_signal"`
	HostID     uint32            `json:"host_id"` // container id 0 is this host id
	IDCount    uint32            `json:"id_count"`
	Cgroups    map[string]string `json:"cgroups"` // hierarchy → host directory
	// CgroupHost is the host's cgroup layout as the monitor saw it, so that
	// lodge exec finds init's cgroups without parsing mountinfo again.
	CgroupHost *cgroup.Host `json:"cgroup_host,omitempty"`
	RootfsMode string       `json:"rootfs_mode"`
	// BootID is the host boot the state was written in (see BootID);
	// WriteState fills it in.
	BootID string `json:"boot_id,omitempty"`
}

// ReadState returns the recorded state of name, or nil if it has none. A
// state written in an earlier boot of the host describes nothing that runs
// (its pids may name unrelated processes now): ReadState returns an error
// that matches ErrOtherBoot for it, and callers treat it as no state.
func (s *Store) ReadState(name string) (*State, error) {
	data, err := rawfile.Read(s.StatePath(name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state of %q: %w", name, err)
	}
	var st State
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("read state of %q: %s is corrupt: %w", name, s.StatePath(name), err)
	}
	if !ThisBoot(st.BootID) {
		return nil, fmt.Errorf("state of %q: %s was %w (boot id %s; this boot is %s)",
			name, s.StatePath(name), ErrOtherBoot, st.BootID, BootID())
	}
	return &st, nil
}

// WriteState records st, stamped with this boot's id, atomically (a reader
// sees the old state or the new one). It does not fsync (see
// atomicfile.WriteRuntime): the state describes running processes, which do
// not outlive a crash of the host either, and after one the boot id marks
// the file stale. Skipping fsync keeps milliseconds of disk flush out of
// every container start.
func (s *Store) WriteState(st *State) error {
	rec := *st
	rec.BootID = BootID()
	data, err := json.MarshalIndent(&rec, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteRuntime(s.StatePath(st.Name), data, 0o600); err != nil {
		return fmt.Errorf("record state of %q: %w", st.Name, err)
	}
	return nil
}

// RemoveState deletes the runtime state, monitor socket and boot id file of
// name.
func (s *Store) RemoveState(name string) {
	os.Remove(s.StatePath(name))
	os.Remove(s.SocketPath(name))
	os.Remove(s.BootIDPath(name))
	os.Remove(s.StopReasonPath(name))
}

// ProcessOf returns the identity of a live process.
func ProcessOf(pid int) (Process, error) {
	start, err := processStart(pid)
	if err != nil {
		return Process{}, err
	}
	return Process{PID: pid, Start: start}, nil
}

// Alive reports whether p still runs (and is not a reused pid). A zombie counts
// as gone.
func (p Process) Alive() bool {
	if p.PID <= 0 {
		return false
	}
	start, err := processStart(p.PID)
	return err == nil && start == p.Start
}

func processStart(pid int) (uint64, error) {
	fields, err := StatFields(pid)
	if err != nil {
		return 0, err
	}
	// fields[0] is field 3 (state); start time is field 22.
	if len(fields) < 20 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	if fields[0] == "Z" || fields[0] == "X" {
		return 0, fmt.Errorf("process %d is a zombie", pid)
	}
	return strconv.ParseUint(fields[19], 10, 64)
}

// StatFields returns the fields of /proc/PID/stat after the command name:
// [0] is field 3, the state letter (R, S, D, Z, ...).
func StatFields(pid int) ([]string, error) {
	data, err := rawfile.Read("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil, err
	}
	// The command name (field 2) may hold spaces and parentheses: split after the last ')'.
	text := string(data)
	end := strings.LastIndexByte(text, ')')
	if end < 0 {
		return nil, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	fields := strings.Fields(text[end+1:])
	if len(fields) == 0 {
		return nil, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	return fields, nil
}
