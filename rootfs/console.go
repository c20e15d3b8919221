package rootfs

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Console is the container's /dev/console: a pty from the container's own devpts.
// The monitor holds Master outside the container; init gets Slave as its stdio.
// Keeping the master out of the container is what lets a checkpoint declare the
// console external and a restore hand it a new one.
type Console struct {
	Master *os.File
	Slave  *os.File
	Name   string // the slave's path inside the container, e.g. /dev/pts/0
}

// Close closes both ends.
func (c *Console) Close() {
	c.Master.Close()
	c.Slave.Close()
}

// newConsole makes a pty in the container's devpts and binds its slave over
// /dev/console.
func newConsole(d *devMounts) (*Console, error) {
	masterFD, err := unix.Openat(d.pts, "ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("open ptmx: %w", err)
	}
	master := os.NewFile(uintptr(masterFD), "console-master")
	slave, n, err := openPeer(master)
	if err != nil {
		master.Close()
		return nil, err
	}
	console := &Console{Master: master, Slave: slave, Name: "/dev/pts/" + strconv.Itoa(n)}
	if err := bindConsole(d, n); err != nil {
		console.Close()
		return nil, err
	}
	return console, nil
}

// bindConsole binds the pty slave number n over an empty /dev/console.
func bindConsole(d *devMounts, n int) error {
	target, err := createFile(d.dev, "console", 0o600)
	if err != nil {
		return err
	}
	defer unix.Close(target)
	src, err := openRaw(d.pts, strconv.Itoa(n), false)
	if err != nil {
		return fmt.Errorf("open the console's pty: %w", err)
	}
	defer unix.Close(src)
	return bindOnto(src, target, "/dev/console", 0, 0)
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
