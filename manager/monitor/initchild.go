package monitor

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"lodge/internal/failpoint"
	"lodge/internal/isolation"
	"lodge/rootfs"
)

// initSetup is what the monitor tells the container's first process.
type initSetup struct {
	Rootfs   string               `json:"rootfs"`
	Cgroups  []rootfs.CgroupMount `json:"cgroups"`
	Hostname string               `json:"hostname"`
	Command  []string             `json:"command"`
	Env      []string             `json:"env"`
	Views    []string             `json:"views"` // targets of the view files the child binds, attached after the tree
	Nesting  bool                 `json:"nesting,omitempty"`
	Seccomp  []byte               `json:"seccomp"` // the filter for init (seccomp.Program.Bytes)
	// OverlayLayers, when not 0, says the root is an overlay this process
	// mounts from that many layers (lowers, then the tree with upper and
	// work), attached as 0..n-1 below the directory sent instead of a root
	// tree.
	OverlayLayers int `json:"overlay_layers,omitempty"`
}

// initSyncFD is the child's end of the socketpair (the first ExtraFile).
const initSyncFD = 3

// InitMain is the container's first process, run as `lodge __init` by the
// monitor in new user, mount, pid, uts, ipc and network namespaces. It builds
// the container's mount tree, reports the console to the monitor, and executes
// the container's init, which takes over its pid (1). It never returns.
func InitMain() {
	// unshare(2) of the cgroup and time namespaces changes only the calling
	// thread; the same thread must mount cgroupfs and execute init.
	runtime.LockOSThread()
	sock := os.NewFile(initSyncFD, "init-sync")
	unix.CloseOnExec(initSyncFD)
	err := runInit(sock)
	send(sock, message{Type: "error", Error: err.Error()})
	os.Exit(1)
}

// runInit returns only on failure: on success init replaces this process.
// The steps after the mounts (hostname, console, capabilities, exec) run on
// the thread that executes init, as the last things before execve.
func runInit(sock *os.File) error {
	setup, tree, views, err := receiveSetup(sock)
	if err != nil {
		return err
	}
	root, err := buildTree(sock, setup, tree)
	if err != nil {
		return err
	}
	spec := rootfs.Spec{Rootfs: setup.Rootfs, Root: root, Views: views, Nesting: setup.Nesting}
	console, err := rootfs.Assemble(spec)
	if err != nil {
		return err
	}
	root.Close()
	for _, v := range views {
		v.Source.Close()
	}
	if err := send(sock, message{Type: "console"}, console.Master); err != nil {
		return err
	}
	console.Master.Close()
	if err := prepareNamespaces(setup.Hostname); err != nil {
		return err
	}
	if err := useConsole(console.Slave); err != nil {
		return err
	}
	if err := isolation.DropCapabilities(); err != nil {
		return err
	}
	if err := isolate(setup); err != nil {
		return err
	}
	return execInit(sock, setup)
}

// receiveSetup waits for the monitor's setup: the root filesystem tree and the
// files of the views this process binds itself.
func receiveSetup(sock *os.File) (*initSetup, *os.File, []rootfs.View, error) {
	msg, files, err := receive(sock)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("wait for setup: %w", err)
	}
	if msg.Type != "setup" || msg.Setup == nil || len(files) != 1+len(msg.Setup.Views) {
		closeAll(files)
		return nil, nil, nil, fmt.Errorf("unexpected %q message from monitor (with %d descriptors)", msg.Type, len(files))
	}
	var views []rootfs.View
	for i, t := range msg.Setup.Views {
		views = append(views, rootfs.View{Source: files[1+i], Target: t})
	}
	tree := files[0]
	if msg.Setup.OverlayLayers > 0 {
		if tree, err = overlayRoot(files[0], msg.Setup.OverlayLayers); err != nil {
			closeAll(files[1:])
			return nil, nil, nil, err
		}
	}
	return msg.Setup, tree, views, nil
}

// buildTree has the monitor build the locked part of the mount tree (see
// rootfs.Stage): this process prepares the mount points and creates the
// kernel filesystems, which only a process in the container's namespaces can,
// and receives the finished tree's root.
func buildTree(sock *os.File, setup *initSetup, tree *os.File) (*os.File, error) {
	defer tree.Close()
	// The monitor has moved this process into the container's cgroups, so the
	// new cgroup namespace is rooted there.
	if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
		return nil, fmt.Errorf("new cgroup namespace: %w", err)
	}
	if err := rootfs.PrepareTree(tree); err != nil {
		return nil, fmt.Errorf("root filesystem %s: %w", setup.Rootfs, err)
	}
	kfs, err := rootfs.NewKernelFS(setup.Cgroups)
	if err != nil {
		return nil, err
	}
	sent := kfs.Files()
	if setup.OverlayLayers > 0 {
		sent = append(sent, tree) // made here: the monitor attaches it
	}
	err = send(sock, message{Type: "kernfs"}, sent...)
	kfs.Close()
	if err != nil {
		return nil, err
	}
	msg, files, err := receive(sock)
	if err != nil {
		return nil, fmt.Errorf("wait for the mount tree: %w", err)
	}
	if msg.Type == "error" {
		closeAll(files)
		return nil, errors.New(msg.Error)
	}
	if msg.Type != "tree" || len(files) != 1 {
		closeAll(files)
		return nil, fmt.Errorf("unexpected %q message from monitor (with %d descriptors)", msg.Type, len(files))
	}
	return files[0], nil
}

// prepareNamespaces names the host and brings up loopback in the container's
// own uts and network namespaces, then gives it its own time namespace, which
// the executed init enters (checkpoint/restore sets clock offsets there).
func prepareNamespaces(hostname string) error {
	if err := unix.Sethostname([]byte(hostname)); err != nil {
		return fmt.Errorf("set hostname: %w", err)
	}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find loopback: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("bring up loopback: %w", err)
	}
	if err := unix.Unshare(unix.CLONE_NEWTIME); err != nil {
		return fmt.Errorf("new time namespace: %w", err)
	}
	return nil
}

// useConsole makes the console init's stdin, stdout and stderr, in a session of
// its own without a controlling terminal: init decides about that itself.
func useConsole(slave *os.File) error {
	if _, err := unix.Setsid(); err != nil && !errors.Is(err, unix.EPERM) {
		return fmt.Errorf("setsid: %w", err)
	}
	for fd := 0; fd <= 2; fd++ {
		if err := unix.Dup3(int(slave.Fd()), fd, 0); err != nil {
			return fmt.Errorf("console as fd %d: %w", fd, err)
		}
	}
	return slave.Close()
}

// execInit replaces this process with the container's init. The sync socket is
// close-on-exec: the monitor sees it close once the exec succeeded.
func execInit(sock *os.File, setup *initSetup) error {
	if err := failpoint.Check("exec"); err != nil {
		return err
	}
	if err := send(sock, message{Type: "exec"}); err != nil {
		return err
	}
	err := unix.Exec(setup.Command[0], setup.Command, setup.Env)
	return fmt.Errorf("execute %s in the container: %w", setup.Command[0], err)
}
