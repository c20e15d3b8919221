// Package fds keeps descriptors from crossing into processes lodge starts.
// A descriptor that lodge's caller left open without close-on-exec (a shell's
// `exec 8</`, sudo, socket activation, a wrapper script) would otherwise
// reach the monitor, the container's init and every `lodge exec` command:
// Go's os/exec passes on every descriptor not marked close-on-exec, and root
// in the container could read the host's files through /proc/1/fd.
package fds

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// CloseOnExecFrom marks every descriptor from first up close-on-exec. The
// process keeps using them; no program it executes inherits them, unless
// lodge hands one over on purpose (os/exec's ExtraFiles, dup2 without
// close-on-exec), which is the only way a descriptor should cross.
func CloseOnExecFrom(first int) error {
	err := unix.CloseRange(uint(first), math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("mark descriptors close-on-exec: %w", err)
	}
	return closeOnExecSlow(first) // kernels before 5.11
}

func closeOnExecSlow(first int) error {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("mark descriptors close-on-exec: %w", err)
	}
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd < first {
			continue
		}
		unix.CloseOnExec(fd) // the directory's own descriptor is gone by now: EBADF, harmless
	}
	return nil
}
