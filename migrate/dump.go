package migrate

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"

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
	// Completed is called once CRIU has written every image, the tree
	// still frozen, before CRIU thaws it or (LeaveRunning false) kills
	// it: the caller makes the checkpoint final here. An error, or a
	// caller killed before it returns, makes CRIU resume the tree.
	Completed func() error
	// Hold is a file CRIU inherits and keeps open until it exits (the
	// container's lock): whoever waits for it waits for CRIU too, even
	// if the caller is killed while CRIU works.
	Hold *os.File
}

// Dump checkpoints a container's process tree with c. CRIU freezes the tree
// through FreezeCgroup (the cgroup freezer, not ptrace: all at once), dumps
// it with its namespaces, and then thaws it (LeaveRunning) or kills it. On
// failure the tree is thawed and left running: CRIU kills only after a dump
// that succeeded and that Completed accepted.
//
// CRIU runs in a process group of its own and is not killed with the
// caller: killed in the middle of a dump it would leave the tree frozen,
// traced and with its parasite code inside. A caller killed meanwhile
// leaves CRIU to finish alone; its post-dump question then goes
// unanswered, and CRIU resumes the tree (also without LeaveRunning) and
// exits.
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
		NotifyScripts: proto.Bool(true),
	}
	completedErr, err := runDump(c.Path, &rpc.CriuReq{Type: rpc.CriuReqType_DUMP.Enum(), Opts: opts}, r)
	if completedErr != nil {
		return completedErr
	}
	if err != nil {
		log := filepath.Join(r.ImagesDir, r.LogFile)
		why := logErrors(log)
		if why == "" { // CRIU died (killed) without a word in its log
			why = err.Error()
		}
		return fmt.Errorf("criu dump of pid %d: %s (see %s)", r.PID, why, log)
	}
	return nil
}

// runDump runs "PATH swrk 3" (its RPC socket as fd 3, Hold as fd 4) in a
// process group of its own, sends it req and answers its notifications
// until its dump response: each with success, post-dump with Completed's
// verdict. It returns Completed's error, and CRIU's.
func runDump(path string, req *rpc.CriuReq, r DumpRequest) (completedErr, err error) {
	var extra []*os.File
	if r.Hold != nil {
		extra = append(extra, r.Hold)
	}
	// Not in the caller's process group: a terminal's ^C (or a kill of
	// the group) must not kill CRIU in the middle of a dump.
	s, err := startSwrk(path, extra, &syscall.SysProcAttr{Setpgid: true})
	if err != nil {
		return nil, err
	}
	err = s.run(req, func(nf *rpc.CriuNotify) bool {
		if nf.GetScript() == "post-dump" && r.Completed != nil {
			if completedErr = r.Completed(); completedErr != nil {
				return false // CRIU resumes the tree and fails the dump
			}
		}
		return true
	})
	// Never killed: a dump left half-way leaves the tree frozen and traced.
	return completedErr, s.finish(err, false)
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
