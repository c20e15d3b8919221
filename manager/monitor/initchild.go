package monitor

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"lodge/manager/failpoint"
	"lodge/rootfs"
)

// initSetup is what the monitor tells the container's first process.
type initSetup struct {
	Rootfs   string               `json:"rootfs"`
	Cgroups  []rootfs.CgroupMount `json:"cgroups"`
	Hostname string               `json:"hostname"`
	Command  []string             `json:"command"`
	Env      []string             `json:"env"`
	Views    []string             `json:"views"`   // targets of the view files attached after tree and target
	Seccomp  []byte               `json:"seccomp"` // the filter for init (seccomp.Program.Bytes)
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
func runInit(sock *os.File) error {
	msg, files, err := receive(sock)
	if err != nil {
		return fmt.Errorf("wait for setup: %w", err)
	}
	if msg.Type != "setup" || msg.Setup == nil || len(files) != 2+len(msg.Setup.Views) {
		return fmt.Errorf("unexpected %q message from monitor (with %d descriptors)", msg.Type, len(files))
	}
	setup, tree, target := msg.Setup, files[0], files[1]
	var views []rootfs.View
	for i, t := range setup.Views {
		views = append(views, rootfs.View{Source: files[2+i], Target: t})
	}
	// The monitor has moved this process into the container's cgroups, so the
	// new cgroup namespace is rooted there.
	if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
		return fmt.Errorf("new cgroup namespace: %w", err)
	}
	spec := rootfs.Spec{Rootfs: setup.Rootfs, Target: target, Tree: tree, Cgroups: setup.Cgroups, Views: views}
	console, err := rootfs.Assemble(spec)
	if err != nil {
		return err
	}
	closeAll(files)
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
	if err := dropCapabilities(); err != nil {
		return err
	}
	if err := isolate(setup); err != nil {
		return err
	}
	return execInit(sock, setup)
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
