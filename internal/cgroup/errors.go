package cgroup

import (
	"errors"

	"golang.org/x/sys/unix"
)

var (
	// ErrUnsupported means the host's cgroups cannot do what was asked: a
	// limit whose controller no hierarchy offers, or freezing without a freezer.
	ErrUnsupported = errors.New("not supported by this host's cgroups")

	// ErrBusy means the group still holds processes.
	ErrBusy = errors.New("cgroup has processes")

	// ErrInternalProcesses means cgroup v2 refused to enable controllers in
	// the base because it holds processes (the no-internal-process rule).
	ErrInternalProcesses = errors.New("the cgroup base holds processes")
)

const errNoDevice = unix.ENODEV
