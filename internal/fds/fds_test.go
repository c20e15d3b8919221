package fds

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func TestCloseOnExecFrom(t *testing.T) {
	f, err := os.Open("/")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// A descriptor as a careless caller leaves it: inheritable.
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	for _, mark := range []func(int) error{CloseOnExecFrom, closeOnExecSlow} {
		unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0)
		if err := mark(3); err != nil {
			t.Fatal(err)
		}
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil || flags&unix.FD_CLOEXEC == 0 {
			t.Errorf("descriptor %d still inheritable (flags %#x, %v)", fd, flags, err)
		}
	}
}
