package rootfs

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Console is the container's /dev/console: a pty of the host's devpts, as
// LXC's is, bound over /dev/console. The monitor holds Master outside the
// container; init gets Slave as its stdio.
//
// The host's devpts, not the container's own, because of checkpoints: CRIU
// can restore a bind-mounted pty only as an external mount, bound from a new
// pty that lodge makes. systemd's services copy /dev/console into mount
// namespaces of their own; those copies are binds of the external mount
// only if every one is of the same file. With the console in the container's
// devpts, a restore gave the copies a pty of the restored devpts that CRIU
// had deleted again, and the next dump failed ("tty: Unable to find a master
// for /0"). A boot and a restore now make the same tree.
type Console struct {
	Master *os.File
	Slave  *os.File
}

// Close closes both ends.
func (c *Console) Close() {
	c.Master.Close()
	c.Slave.Close()
}

// newConsole makes a pty in the host's devpts and binds its slave over
// /dev/console. It runs in the container's user namespace, before the
// pivot, so the host's /dev is still there. The slave is made the
// container's root's, mode 0600, as a restore makes it: devpts gives it the
// opener's uid but, on hosts that mount it with gid=5, the host's tty group.
func newConsole(d *devMounts) (*Console, error) {
	masterFD, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open the host's /dev/ptmx: %w", err)
	}
	master := os.NewFile(uintptr(masterFD), "console-master")
	slave, _, err := openPeer(master)
	if err != nil {
		master.Close()
		return nil, err
	}
	console := &Console{Master: master, Slave: slave}
	if err := ownConsole(slave); err != nil {
		console.Close()
		return nil, err
	}
	if err := bindConsole(d, slave); err != nil {
		console.Close()
		return nil, err
	}
	return console, nil
}

// ownConsole makes the pty slave root's and group root's (the container's,
// from its user namespace) with mode 0600.
func ownConsole(slave *os.File) error {
	if err := slave.Chown(0, 0); err != nil {
		return fmt.Errorf("own the console: %w", err)
	}
	if err := slave.Chmod(0o600); err != nil {
		return fmt.Errorf("console mode: %w", err)
	}
	return nil
}

// bindConsole binds the pty slave over an empty /dev/console. The bind is
// cloned from the open slave, not looked up by its path.
func bindConsole(d *devMounts, slave *os.File) error {
	target, err := createFile(d.dev, "console", 0o600)
	if err != nil {
		return err
	}
	defer unix.Close(target)
	return bindOnto(int(slave.Fd()), target, "/dev/console", 0, 0)
}

// openPeer unlocks the pty and opens its slave through the master (TIOCGPTPEER),
// which needs no path lookup and cannot be raced.
func openPeer(master *os.File) (*os.File, int, error) {
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		return nil, 0, fmt.Errorf("unlock pty: %w", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		return nil, 0, fmt.Errorf("pty number: %w", err)
	}
	slaveFD, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TIOCGPTPEER,
		unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)
	if errno != 0 {
		return nil, 0, fmt.Errorf("open pty peer: %w", errno)
	}
	return os.NewFile(uintptr(slaveFD), "pts/"+strconv.Itoa(n)), n, nil
}
