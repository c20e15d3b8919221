package migrate

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/checkpoint-restore/go-criu/v7/rpc"
	"google.golang.org/protobuf/proto"
)

// ExternalMount names one mount of a container that CRIU must not dump: on
// dump the mount at Target is recorded under Key; on restore Key is bound
// from Source.
type ExternalMount struct {
	Target string // inside the container, e.g. /dev/null
	Key    string // its name in the images, e.g. lodge:/dev/null
	Source string // restore: the host path to bind
}

// DumpRequest is one checkpoint of a container's process tree.
type DumpRequest struct {
	PID          int             // the container's init (host pid)
	ImagesDir    string          // where the images go (exists, empty)
	LogFile      string          // CRIU's log, relative to ImagesDir
	LeaveRunning bool            // false: the tree is killed after a successful dump
	Mounts       []ExternalMount // external mounts (Target and Key)
	TTYs         []string        // external ttys, as CRIU's tty[RDEV:DEV]
	FreezeCgroup string          // the freezer cgroup CRIU freezes the tree with
}

// Dump checkpoints a container's process tree with c. CRIU freezes the tree
// through FreezeCgroup (the cgroup freezer, not ptrace: all at once), dumps
// it with its namespaces, and then thaws it (LeaveRunning) or kills it. On
// failure the tree is thawed and left running: CRIU kills only after a dump
// that succeeded.
func Dump(c *CRIU, r DumpRequest) error {
	dir, err := os.Open(r.ImagesDir)
	if err != nil {
		return fmt.Errorf("checkpoint images: %w", err)
	}
	defer dir.Close()
	if _, err := writeIrmapCache(r.ImagesDir, r.PID); err != nil {
		return err
	}
	opts := &rpc.CriuOpts{
		ImagesDirFd:    proto.Int32(int32(dir.Fd())),
		Pid:            proto.Int32(int32(r.PID)),
		LogFile:        proto.String(r.LogFile),
		LogLevel:       proto.Int32(4),
		LeaveRunning:   proto.Bool(r.LeaveRunning),
		TcpEstablished: proto.Bool(true),
		FileLocks:      proto.Bool(true),
		// A host without iptables (Debian 12 with nftables only) has
		// nothing else to lock the network with.
		NetworkLock:  rpc.CriuNetworkLockMethod_NFTABLES.Enum(),
		FreezeCgroup: proto.String(r.FreezeCgroup),
		// CRIU records the tasks' cgroups and the tree's properties.
		ManageCgroups: proto.Bool(true),
		External:      dumpExternals(r),
	}
	if err := c.Client().Dump(opts, nil); err != nil {
		return fmt.Errorf("criu dump of pid %d: %s (see %s)", r.PID, logErrors(filepath.Join(r.ImagesDir, r.LogFile)), filepath.Join(r.ImagesDir, r.LogFile))
	}
	return nil
}

// dumpExternals are CRIU's --external entries for a dump: mnt[TARGET]:KEY
// for each external mount, and the external ttys.
func dumpExternals(r DumpRequest) []string {
	var out []string
	for _, m := range r.Mounts {
		out = append(out, fmt.Sprintf("mnt[%s]:%s", m.Target, m.Key))
	}
	return append(out, r.TTYs...)
}
