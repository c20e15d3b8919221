package monitor

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"lodge/internal/cgroup"
	"lodge/internal/failpoint"
	"lodge/internal/helper"
	"lodge/rootfs"
)

// The container's first process is the lodge binary re-executed as `__init` in
// new namespaces. Creating namespaces needs no C: clone flags and id maps are
// set by the Go runtime before the child runs. The child then waits for the
// monitor, which needs the child's user namespace to idmap the root filesystem:
//
//	monitor                                   child (lodge __init, pid 1 inside)
//	clone3(NEWUSER|NEWNS|NEWPID|NEWUTS|NEWIPC|NEWNET, INTO_CGROUP), uid/gid maps
//	                                            [init stub: join v1 cgroups, exec lodge]
//	                                            |  waits on the socket
//	open_tree+mount_setattr(IDMAP, child userns)|
//	---- setup{rootfs, cgroups, init} + tree fd ---->
//	                                            unshare(NEWCGROUP), mount points,
//	<------- kernfs: proc, sysfs, cgroupfs fds ----  detached kernel filesystems
//	on the stage thread (rootfs.Stage): tree,  |
//	kernfs, masks, read-only binds, views,     |
//	boot id; hand over                         |
//	----------------- tree: its root fd ------------>
//	                                            /run, /dev, console, pivot_root
//	<--------------- console + pty master fd ------
//	                                            hostname, loopback, unshare(NEWTIME)
//	<--------------- exec -------------------------
//	                                            execve(init); the socket is
//	<--------------- (socket closes) --------------  close-on-exec
//
// The child is cloned from the monitor's stage thread, whose private mount
// namespace hands the child the locked part of its tree by propagation.
//
// Any failure in the child arrives as an "error" message instead, and the
// child exits; the monitor then undoes its own steps.

// containerNamespaces are created at clone time. The cgroup namespace comes
// later (the child must be in its cgroups first), and the time namespace last
// (its clock offsets can only be set before a process enters it).
const containerNamespaces = syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS | syscall.CLONE_NEWPID |
	syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC | syscall.CLONE_NEWNET

// child is the container's first process before and after it becomes init.
type child struct {
	cmd  *exec.Cmd
	sock *os.File // the monitor's end of the sync socket
}

// spawnSpec says how to start the container's first process.
type spawnSpec struct {
	hostID, count uint32           // the container's id range
	placement     cgroup.Placement // the container's cgroups
	helper        string           // lodge-helper, or "" if it is missing
	stderr        *os.File
}

// spawnChild starts `lodge __init` in new namespaces with the container's id
// range mapped to 0..count-1, already in the container's cgroups: cgroup2 at
// clone time (CLONE_INTO_CGROUP), v1 through the helper's init stub, which
// joins them before executing lodge (see cmd/lodge-helper for why this is faster than
// moving the process afterwards). It reports whether the child still needs
// moving (no helper).
func spawnChild(s spawnSpec) (c *child, needsMove bool, err error) {
	if err := failpoint.Check("spawn"); err != nil {
		return nil, false, err
	}
	parentSock, childSock, err := socketpair()
	if err != nil {
		return nil, false, err
	}
	defer childSock.Close()
	cmd := exec.Command("/proc/self/exe", "__init")
	cmd.Args[0] = "lodge-init"
	cmd.Env = failpoint.Env()
	cmd.Stderr = s.stderr
	cmd.ExtraFiles = []*os.File{childSock}
	cmd.SysProcAttr = namespaceAttrs(s.hostID, s.count)
	if s.placement.Unified != "" {
		dir, err := os.Open(s.placement.Unified)
		if err != nil {
			parentSock.Close()
			return nil, false, fmt.Errorf("open the container's cgroup: %w", err)
		}
		defer dir.Close()
		cmd.SysProcAttr.UseCgroupFD = true
		cmd.SysProcAttr.CgroupFD = int(dir.Fd())
	}
	if len(s.placement.Tasks) > 0 {
		if s.helper == "" {
			needsMove = true
		} else {
			exe, err := os.Open("/proc/self/exe")
			if err != nil {
				parentSock.Close()
				return nil, false, err
			}
			defer exe.Close()
			cmd.Path = s.helper
			cmd.ExtraFiles = append(cmd.ExtraFiles, exe)
			cmd.Env = append(cmd.Env, helper.InitStub(initSyncFD+1, s.placement.Tasks)...)
		}
	}
	if err := cmd.Start(); err != nil {
		parentSock.Close()
		return nil, false, fmt.Errorf("create the container's namespaces: %w", err)
	}
	return &child{cmd: cmd, sock: parentSock}, needsMove, nil
}

// namespaceAttrs creates the container's namespaces and makes the child the
// container's root.
func namespaceAttrs(hostID, count uint32) *syscall.SysProcAttr {
	idMap := []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(hostID), Size: int(count)}}
	return &syscall.SysProcAttr{
		Cloneflags:                 containerNamespaces,
		UidMappings:                idMap,
		GidMappings:                idMap,
		GidMappingsEnableSetgroups: true,
		// Become the container's root: host root is not mapped inside, and an
		// unmapped uid has no capabilities in the new user namespace.
		Credential: &syscall.Credential{Uid: 0, Gid: 0},
	}
}

// pid is the child's host pid.
func (c *child) pid() int { return c.cmd.Process.Pid }

// userns opens the child's user namespace.
func (c *child) userns() (*os.File, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(c.pid()) + "/ns/user")
	if err != nil {
		return nil, fmt.Errorf("open user namespace of the container: %w", err)
	}
	return f, nil
}

// kill ends the child (and with it its pid namespace) and reaps it.
func (c *child) kill() {
	c.cmd.Process.Kill()
	c.cmd.Wait()
	c.sock.Close()
}

// setup sends the setup, builds the locked mount tree with the child (see
// rootfs.Stage) and waits until init runs, returning the console's pty master.
// locked gives the rest of the locked part; it is called while the child
// prepares.
func (c *child) setup(s *initSetup, tree *os.File, views []rootfs.View, stage *rootfs.Stage, locked func() rootfs.Locked) (*os.File, error) {
	files := []*os.File{tree}
	for _, v := range views {
		s.Views = append(s.Views, v.Target)
		files = append(files, v.Source)
	}
	if err := send(c.sock, message{Type: "setup", Setup: s}, files...); err != nil {
		return nil, err
	}
	if s.OverlayLayers > 0 {
		tree = nil // the child makes the tree and sends it with kernfs
	}
	if err := c.buildTree(tree, stage, locked()); err != nil {
		return nil, err
	}
	console, err := c.expect("console")
	if err != nil {
		return nil, err
	}
	if _, err := c.expect("exec"); err != nil {
		console.Close()
		return nil, err
	}
	if err := c.waitExec(); err != nil {
		console.Close()
		return nil, err
	}
	c.sock.Close()
	return console, nil
}

// buildTree receives the child's kernel filesystems, builds the locked tree
// on the stage and sends the child the tree's root in its own namespace.
func (c *child) buildTree(tree *os.File, stage *rootfs.Stage, locked rootfs.Locked) error {
	msg, files, err := receive(c.sock)
	if errors.Is(err, errPeerClosed) {
		return fmt.Errorf("the container's first process exited during setup (see the monitor log)")
	}
	if err != nil {
		return err
	}
	defer closeAll(files)
	if msg.Type == "error" {
		return errors.New(msg.Error)
	}
	if msg.Type != "kernfs" {
		return fmt.Errorf("expected %q from the container's first process, got %q", "kernfs", msg.Type)
	}
	if tree == nil {
		if tree, files, err = childTree(files); err != nil {
			return err
		}
	}
	kfs, err := rootfs.KernelFSFromFiles(files, len(locked.Cgroups))
	if err != nil {
		return err
	}
	if err := stage.Build(tree, kfs, locked); err != nil {
		return err
	}
	// The tree is now at the stage's shared directory in the child's mount
	// namespace; opened through /proc/PID/root, the descriptor names the
	// child's copy.
	root, err := rootfs.OpenTarget(c.pid(), stage.SharedDir())
	if err != nil {
		return err
	}
	defer root.Close()
	return send(c.sock, message{Type: "tree"}, root)
}

// expect receives the next message, which must be of type want; it returns the
// attached file, if any.
func (c *child) expect(want string) (*os.File, error) {
	msg, files, err := receive(c.sock)
	if errors.Is(err, errPeerClosed) {
		return nil, fmt.Errorf("the container's first process exited during setup (see the monitor log)")
	}
	if err != nil {
		return nil, err
	}
	if msg.Type == "error" {
		closeAll(files)
		return nil, errors.New(msg.Error)
	}
	if msg.Type != want {
		closeAll(files)
		return nil, fmt.Errorf("expected %q from the container's first process, got %q", want, msg.Type)
	}
	if len(files) == 0 {
		return nil, nil
	}
	closeAll(files[1:])
	return files[0], nil
}

// waitExec waits for the socket to close: the child's end is close-on-exec, so
// a close without an error message means init is running.
func (c *child) waitExec() error {
	msg, files, err := receive(c.sock)
	closeAll(files)
	if errors.Is(err, errPeerClosed) {
		return nil
	}
	if err != nil {
		return err
	}
	if msg.Type == "error" {
		return errors.New(msg.Error)
	}
	return fmt.Errorf("unexpected %q message after exec", msg.Type)
}

// childTree takes the root tree the child made (an overlay) from the end of
// its kernfs message and sets nodev on it, as rootfs.OpenTree does on a
// directory's tree (the kernel forces nodev on an overlay a user namespace
// owns anyway; this says it where lodge's other mounts say it).
func childTree(files []*os.File) (*os.File, []*os.File, error) {
	if len(files) == 0 {
		return nil, nil, fmt.Errorf("the container's first process sent no root tree")
	}
	tree := files[len(files)-1]
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_NODEV}
	if err := unix.MountSetattr(int(tree.Fd()), "", unix.AT_EMPTY_PATH, &attr); err != nil {
		return nil, nil, fmt.Errorf("set nodev on the container's overlay root: %w", err)
	}
	return tree, files[:len(files)-1], nil
}
