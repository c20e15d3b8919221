package migrate

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	criu "github.com/checkpoint-restore/go-criu/v7"
	"github.com/checkpoint-restore/go-criu/v7/rpc"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
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
}

// Restore restores a container's process tree with c, as a child of the
// calling process (CRIU's restore-sibling): the caller is the restored
// init's parent and reaps it. On failure CRIU kills what it restored.
func Restore(c *CRIU, r RestoreRequest) (int, error) {
	dir, err := os.Open(r.ImagesDir)
	if err != nil {
		return 0, fmt.Errorf("checkpoint images: %w", err)
	}
	defer dir.Close()
	// CRIU finds the console's slave at its descriptor number: criu swrk
	// inherits it (Go's exec passes descriptors without close-on-exec).
	consoleFD := int(r.Console.Fd())
	if _, err := unix.FcntlInt(uintptr(consoleFD), unix.F_SETFD, 0); err != nil {
		return 0, err
	}
	defer unix.FcntlInt(uintptr(consoleFD), unix.F_SETFD, unix.FD_CLOEXEC)
	opts := &rpc.CriuOpts{
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
		InheritFd:         []*rpc.InheritFd{{Key: proto.String(r.ConsoleTTY), Fd: proto.Int32(int32(consoleFD))}},
	}
	for ctrl, path := range r.CgroupRoots {
		root := &rpc.CgroupRoot{Path: proto.String(path)}
		if ctrl != "" {
			root.Ctrl = proto.String(ctrl)
		}
		opts.CgRoot = append(opts.CgRoot, root)
	}
	n := &restoreNotify{restored: r.Restored}
	defer n.lock.close()
	if err := c.Client().Restore(opts, n); err != nil {
		return 0, fmt.Errorf("criu restore: %s (see %s)", logErrors(filepath.Join(r.ImagesDir, r.LogFile)), filepath.Join(r.ImagesDir, r.LogFile))
	}
	if n.pid == 0 {
		return 0, fmt.Errorf("criu restore: no pid reported (see %s/%s)", r.ImagesDir, r.LogFile)
	}
	// CRIU ignores a failed network-unlock notification: make sure, and
	// rather than leave a container cut off, end it (the caller is its
	// parent: reap it) and fail the restore.
	if err := n.lock.unlock(); err != nil {
		unix.Kill(n.pid, unix.SIGKILL)
		unix.Wait4(n.pid, nil, 0, nil)
		return 0, err
	}
	return n.pid, nil
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

// restoreNotify takes the restored init's pid from CRIU's post-restore
// notification, and locks the restored network namespace from its
// creation until CRIU unlocks it (restoreLockTable says why).
type restoreNotify struct {
	criu.NoNotify
	restored func(pid int) error
	pid      int
	lock     *restoreLock
}

func (n *restoreNotify) SetupNamespaces(pid int32) error {
	lock, err := lockRestoredNetwork(int(pid))
	n.lock = lock
	return err
}

func (n *restoreNotify) NetworkUnlock() error { return n.lock.unlock() }

func (n *restoreNotify) PostRestore(pid int32) error {
	n.pid = int(pid)
	if n.restored != nil {
		return n.restored(n.pid)
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
