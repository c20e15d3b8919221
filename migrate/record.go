package migrate

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"lodge/internal/atomicfile"
)

// RecordName is lodge's record in a checkpoint directory, beside CRIU's
// images.
const RecordName = "checkpoint.json"

// Record is what lodge needs, besides CRIU's images, to restore a
// checkpoint of container Container.
type Record struct {
	Container string            `json:"container"`
	Created   time.Time         `json:"created"`
	CRIU      int               `json:"criu_version"`
	InitPID   int               `json:"init_pid"` // in the host's pid namespace, at dump
	Cgroups   map[string]string `json:"cgroups"`  // hierarchy -> path, at dump
	// Subgroups are the cgroups below the container's, per hierarchy,
	// relative to its cgroup there, parents first: systemd watches even
	// the empty ones (inotify on cgroup.events), so a restore makes them
	// all before CRIU runs.
	Subgroups map[string][]string `json:"subgroups,omitempty"`
	HostID    uint32              `json:"host_id"` // the id range: a restore needs the same
	IDCount   uint32              `json:"id_count"`
	Mounts    []string            `json:"external_mounts"` // targets declared external (rootfs.External)
	Console   string              `json:"console_tty"`     // CRIU's tty[RDEV:DEV] of the console
	BootID    string              `json:"boot_id"`         // the container's boot id at dump
	// Uptime is how long the container had run at dump. A restore back-dates
	// the state's start by it, so that /proc/uptime in the views goes on
	// from there, as the clocks of the container's time namespace do
	// (CRIU restores their offsets): the time it spent stopped is not counted.
	Uptime time.Duration `json:"uptime_ns,omitempty"`
	// NICs are the container's interfaces at dump. CRIU's images hold
	// their names, MACs and the addresses configured inside; a restore
	// makes each again on the same network and refuses if the container's
	// configuration or its network would now give it another MAC or
	// address.
	NICs []RecordNIC `json:"nics,omitempty"`
}

// RecordNIC is one NIC of a checkpointed container.
type RecordNIC struct {
	Name     string     `json:"name"` // in the container, e.g. eth0
	Kind     string     `json:"kind"` // "bridged" or "macvlan"
	MAC      string     `json:"mac"`
	Network  string     `json:"network,omitempty"` // bridged: the managed network
	Address4 netip.Addr `json:"address4,omitzero"`
	Address6 netip.Addr `json:"address6,omitzero"`
}

// WriteRecord writes r into checkpoint directory dir.
func WriteRecord(dir string, r Record) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, RecordName), append(data, '\n'), 0o600)
}

// ReadRecord reads the record of checkpoint directory dir.
func ReadRecord(dir string) (Record, error) {
	var r Record
	data, err := os.ReadFile(filepath.Join(dir, RecordName))
	if err != nil {
		return r, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("checkpoint %s: %s is damaged: %w", dir, RecordName, err)
	}
	return r, nil
}
