package isolation

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"lodge/config"
	"lodge/internal/seccomp"
)

// JoinSessionKeyring gives the calling thread a new anonymous session keyring.
// Without it the container would share the keyring of whoever ran `lodge
// start` (keyrings are not namespaced), and root inside could read the
// operator's keys. ENOSYS means there is nothing to share: a kernel without
// keyrings, or a lodge nested in a container whose filter denies keyctl.
func JoinSessionKeyring() error {
	// A NULL name makes an anonymous keyring; x/sys/unix's wrapper would pass "",
	// which names a keyring that others of the same user could join.
	_, _, errno := unix.RawSyscall(unix.SYS_KEYCTL, unix.KEYCTL_JOIN_SESSION_KEYRING, 0, 0)
	if errno != 0 && !errors.Is(errno, unix.ENOSYS) {
		return fmt.Errorf("join a new session keyring: %w", errno)
	}
	return nil
}

// Filter is the seccomp filter of a container with configuration cfg, for
// its init and for each command `lodge exec` runs in it.
//
// A container with a disk limit may not create btrfs subvolumes or
// snapshots: on btrfs the limit is a qgroup limit on its root subvolume,
// and a subvolume made inside has its own qgroup, without a limit, where
// the tenant could write past it. Without a limit nothing is to be escaped,
// and subvolumes stay for what uses them (Docker's btrfs driver in a nested
// container, systemd-machined, snapper). On other filesystems the kernel
// refuses these ioctls already (ENOTTY, what the filter answers too).
func Filter(cfg *config.Container) (seccomp.Program, error) {
	prog, err := seccomp.Build(seccomp.Config{
		Deny: cfg.Security.Syscalls.Deny, Allow: cfg.Security.Syscalls.Allow, Nesting: cfg.Security.Nesting,
		NoSubvolumes: cfg.Limits.Disk > 0,
	})
	if err != nil {
		return nil, fmt.Errorf("seccomp filter (security.syscalls.*): %w", err)
	}
	return prog, nil
}
