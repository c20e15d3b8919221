package migrate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/checkpoint-restore/go-criu/v7/rpc"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"lodge/internal/cgroup"
)

// RestoreRequest is one restore of a container's process tree.
type RestoreRequest struct {
	ImagesDir  string          // the checkpoint's images
	LogFile    string          // CRIU's log, relative to ImagesDir
	Root       string          // the container's root as it sees it (idmapped)
	Mounts     []ExternalMount // external mounts (Key and Source)
	Console    *os.File        // the new console's pty slave
	ConsoleTTY string          // its name in the images, tty[RDEV:DEV]
	Externals  []string        // more --external entries: the NICs' (network.Attachment.CRIUExternal)
	// CgroupRoots put the restored tree in the container's cgroups here
	// (controller -> cgroup path; "" for every controller not named),
	// whatever cgroups it was dumped from: another host's or another lodge
	// root's after a migration.
	CgroupRoots map[string]string
	// Restored is called with the restored init's host pid after the tree
	// is restored and before it runs again (CRIU's post-restore).
	Restored func(pid int) error
	// Hold, if not nil, is the container's cgroup (the top of the restored
	// tree's), frozen before the tasks run again: the restore returns with
	// the tree frozen, and none of the tasks' own code has run since the
	// dump (only CRIU's restorer, in them). Whoever thaws the group lets
	// them go on. A held tree's network namespace stays locked too
	// (restoreLockTable: nothing in or out but CRIU's own packets), so
	// that its kernel does not take a TCP peer's data for sockets that may
	// yet be dropped (the source may resume its copy instead):
	// UnlockRestoredNetwork lets it go with the tasks.
	Hold *cgroup.Group
}

// holdTimeout bounds the freeze of a held restore: the tasks are stopped
// (traced by CRIU) when it is asked, so it completes at once.
const holdTimeout = 10 * time.Second

// Restore restores a container's process tree with c, as a child of the
// calling process (CRIU's restore-sibling): the caller is the restored
// init's parent and reaps it. On failure CRIU kills what it restored.
//
// lodge drives CRIU's RPC itself (swrk) and answers every notification:
// setup-namespaces (the restored network locked, restoreLockTable),
// post-restore (Restored), network-unlock, and pre-resume (Hold).
func Restore(c *CRIU, r RestoreRequest) (int, error) {
	dir, err := os.Open(r.ImagesDir)
	if err != nil {
		return 0, fmt.Errorf("checkpoint images: %w", err)
	}
	defer dir.Close()
	log := filepath.Join(r.ImagesDir, r.LogFile)
	opts := &rpc.CriuOpts{
		// CRIU opens it as /proc/<lodge's pid>/fd/N.
		ImagesDirFd:       proto.Int32(int32(dir.Fd())),
		LogFile:           proto.String(r.LogFile),
		LogLevel:          proto.Int32(4),
		Root:              proto.String(r.Root),
		RstSibling:        proto.Bool(true),
		TcpEstablished:    proto.Bool(true),
		FileLocks:         proto.Bool(true),
		NetworkLock:       rpc.CriuNetworkLockMethod_NFTABLES.Enum(),
		ManageCgroups:     proto.Bool(true),
		ManageCgroupsMode: rpc.CriuCgMode_SOFT.Enum(),
		External:          restoreExternals(r),
		// The console's slave is CRIU's own descriptor 4 (startSwrk's
		// first extra file), where CRIU finds it.
		InheritFd:     []*rpc.InheritFd{{Key: proto.String(r.ConsoleTTY), Fd: proto.Int32(4)}},
		NotifyScripts: proto.Bool(true),
	}
	for ctrl, path := range r.CgroupRoots {
		root := &rpc.CgroupRoot{Path: proto.String(path)}
		if ctrl != "" {
			root.Ctrl = proto.String(ctrl)
		}
		opts.CgRoot = append(opts.CgRoot, root)
	}
	n := &restoreNotify{restored: r.Restored, hold: r.Hold}
	defer func() { n.lock.close() }() // n.lock is set at setup-namespaces
	err = runRestore(c.Path, &rpc.CriuReq{Type: rpc.CriuReqType_RESTORE.Enum(), Opts: opts}, r.Console, n)
	if err != nil {
		why := logErrors(log)
		switch {
		case why == "":
			why = err.Error()
		case n.err != nil: // lodge's answer to a notification failed it
			why = n.err.Error() + "; " + why
		}
		return 0, fmt.Errorf("criu restore: %s (see %s)", why, log)
	}
	if n.pid == 0 {
		return 0, fmt.Errorf("criu restore: no pid reported (see %s)", log)
	}
	// CRIU ignores a failed network-unlock or pre-resume answer: make
	// sure, and rather than leave a container cut off, or running when it
	// was to be held, end it (the caller is its parent: reap it) and fail
	// the restore.
	fail := func(err error) (int, error) {
		unix.Kill(n.pid, unix.SIGKILL)
		unix.Wait4(n.pid, nil, 0, nil)
		return 0, err
	}
	if r.Hold == nil {
		if err := n.lock.unlock(); err != nil {
			return fail(err)
		}
	}
	if r.Hold != nil {
		if err := n.checkHeld(); err != nil {
			return fail(err)
		}
	}
	return n.pid, nil
}

// runRestore runs "PATH swrk 3" (the console as its fd 4), sends it req
// and answers its notifications until its restore response. CRIU runs in
// the caller's process group, as its restore-sibling child.
func runRestore(path string, req *rpc.CriuReq, console *os.File, n *restoreNotify) error {
	s, err := startSwrk(path, []*os.File{console}, nil)
	if err != nil {
		return err
	}
	err = s.run(req, n.notify)
	if err != nil && n.err != nil { // CRIU failed the restore because of it
		err = fmt.Errorf("%v: %w", err, n.err)
	}
	// Not killed: with the socket closed CRIU fails the restore and kills
	// what it restored.
	return s.finish(err, false)
}

// restoreExternals are CRIU's --external entries for a restore:
// mnt[KEY]:SOURCE for each external mount.
func restoreExternals(r RestoreRequest) []string {
	var out []string
	for _, m := range r.Mounts {
		out = append(out, fmt.Sprintf("mnt[%s]:%s", m.Key, m.Source))
	}
	return append(out, r.Externals...)
}

// restoreNotify answers a restore's notifications: it locks the restored
// network namespace from its creation until CRIU unlocks it
// (restoreLockTable says why), takes the restored init's pid from
// post-restore, and freezes the held tree at pre-resume.
type restoreNotify struct {
	restored func(pid int) error
	hold     *cgroup.Group
	pid      int
	lock     *restoreLock
	err      error // the first notification that failed
	holdErr  error // the freeze at pre-resume failed (CRIU goes on)
	held     bool  // frozen at pre-resume
}

// notify handles one notification and says whether it went well.
// Those lodge does not use are answered with success.
func (n *restoreNotify) notify(nf *rpc.CriuNotify) bool {
	var err error
	switch nf.GetScript() {
	case "setup-namespaces":
		n.lock, err = lockRestoredNetwork(int(nf.GetPid()))
	case "post-restore":
		n.pid = int(nf.GetPid())
		if n.restored != nil {
			err = n.restored(n.pid)
		}
	case "network-unlock":
		if n.hold == nil {
			err = n.lock.unlock()
		}
	case "pre-resume":
		err = n.freeze()
	}
	if err != nil && n.err == nil {
		n.err = err
	}
	return err == nil
}

// freeze freezes the held tree at CRIU's pre-resume. There every task is
// restored and stopped, traced by CRIU at its last rt_sigreturn; CRIU
// then only sets their registers and detaches (finalize_restore_detach).
// It does the same with a tree dumped frozen (its restore_freezer_state
// freezes it right after this notification), so a frozen group is what
// CRIU expects here: a detached task goes from its trace stop into the
// freezer without returning to user space.
func (n *restoreNotify) freeze() error {
	if n.hold == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), holdTimeout)
	defer cancel()
	if err := n.hold.Freeze(ctx); err != nil {
		n.holdErr = fmt.Errorf("hold the restored tree frozen: %w", err)
		return n.holdErr
	}
	n.held = true
	return nil
}

// checkHeld makes sure a held tree is frozen once CRIU is done. CRIU
// writes the v1 freezer's state it recorded at the dump (THAWED: lodge's
// dumps freeze the tree themselves) right after pre-resume, on a host
// where lodge's freezer is the v1 one (no cgroup2): that thaws the hold,
// and the tasks run from CRIU's detach until the freeze here.
func (n *restoreNotify) checkHeld() error {
	if n.holdErr != nil {
		return n.holdErr
	}
	if !n.held {
		return errors.New("hold the restored tree frozen: CRIU never said it was about to resume it (pre-resume)")
	}
	if frozen, err := n.hold.Frozen(); err == nil && frozen {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), holdTimeout)
	defer cancel()
	if err := n.hold.Freeze(ctx); err != nil {
		return fmt.Errorf("hold the restored tree frozen: %w", err)
	}
	return nil
}

// logErrors is the last few error lines of CRIU's log at path, for an
// error message: CRIU's own answer names only its first complaint, which
// is often a harmless one.
func logErrors(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var errs []string
	for _, line := range strings.Split(string(data), "\n") {
		if strings.Contains(line, "Error (") && !strings.Contains(line, "RLIMIT_NOFILE") {
			errs = append(errs, strings.TrimSpace(line))
		}
	}
	if len(errs) > 3 {
		errs = errs[len(errs)-3:]
	}
	return strings.Join(errs, "; ")
}
