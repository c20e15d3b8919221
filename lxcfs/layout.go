// Package lxcfs describes lodge's /proc and /sys views server (lodge lxcfs)
// to the rest of lodge: where a lodge root's server lives, whether it runs,
// which mounts a container gets and how checkpoints name them. The server
// itself is package lxcfs/server, built into its own binary, lodge-lxcfs, so
// that lodge's other commands do not pay for FUSE at start-up.
package lxcfs

import (
	"encoding/json"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"lodge/internal/store"
)

// ProcFiles are the /proc files served, relative to /proc.
var ProcFiles = []string{"meminfo", "cpuinfo", "stat", "uptime", "loadavg", "swaps", "diskstats"}

// CPUDir is the /sys directory served.
const CPUDir = "sys/devices/system/cpu"

// ContainersDir holds a copy of the tree per container name; each
// container's views are bound from its own copy.
const ContainersDir = "containers"

// ServerName is the server's binary, built next to lodge.
const ServerName = "lodge-lxcfs"

// Dir holds a lodge root's server: its mount point, state, lock and log.
func Dir(st *store.Store) string { return filepath.Join(st.RunDir(), "lxcfs") }

// DirMode keeps Dir, and with it the views' mount point, to root: the mount
// is allow_other (containers' uids read it), so a host user who could reach
// it would read every container's views. Containers reach their views
// through binds made from descriptors, never through this path.
const DirMode = 0o700

// MountPoint is where the server mounts its tree on the host; containers get
// bind mounts of its files.
func MountPoint(st *store.Store) string { return filepath.Join(Dir(st), "mnt") }

// StatePath records the running server (ServerState).
func StatePath(st *store.Store) string { return filepath.Join(Dir(st), "server.json") }

// LogPath is the server's log.
func LogPath(st *store.Store) string { return filepath.Join(Dir(st), "lxcfs.log") }

// ServerState identifies a running server and whoever restarts it.
type ServerState struct {
	Server     store.Process `json:"server"`
	Supervisor store.Process `json:"supervisor"`        // zero when run by a service manager
	BootID     string        `json:"boot_id,omitempty"` // the host boot it was written in (store.BootID)
}

// ReadState returns the recorded server, or nil: also for a record from an
// earlier boot of the host, whose pids may name other processes now.
func ReadState(st *store.Store) *ServerState {
	data, err := os.ReadFile(StatePath(st))
	if err != nil {
		return nil
	}
	var s ServerState
	if json.Unmarshal(data, &s) != nil || !store.ThisBoot(s.BootID) {
		return nil
	}
	return &s
}

// Live reports whether the server's tree is mounted and answering.
func Live(st *store.Store) bool {
	var sfs unix.Statfs_t
	if err := unix.Statfs(filepath.Join(MountPoint(st), "proc"), &sfs); err != nil {
		return false
	}
	return sfs.Type == unix.FUSE_SUPER_MAGIC
}

// SupervisedEnv is set by lodge when it starts the server under its
// supervisor (lodge-helper), so the server records who restarts it.
const SupervisedEnv = "LODGE_LXCFS_SUPERVISED"

// RestartExitCode is the exit status for ErrRestart: non-zero, so that
// lodge-helper's supervisor and systemd's Restart=on-failure start it again.
const RestartExitCode = 75

// Mounts lists the bind mounts container name gets: source relative to the
// mount point (in the container's own copy of the tree), target inside the
// container. Checkpoints name them external.
func Mounts(name string) [][2]string {
	base := ContainersDir + "/" + name + "/"
	var m [][2]string
	for _, f := range ProcFiles {
		m = append(m, [2]string{base + "proc/" + f, "/proc/" + f})
	}
	return append(m, [2]string{base + CPUDir, "/" + CPUDir})
}
