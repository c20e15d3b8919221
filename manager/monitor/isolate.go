package monitor

import (
	"fmt"

	"lodge/internal/fds"
	"lodge/internal/isolation"
	"lodge/internal/seccomp"
)

// isolate is the last step before init executes, on the thread that executes
// it (session keyrings and seccomp filters belong to a thread until execve):
// init inherits no descriptor but its console (0-2) and the sync socket, which
// closes on exec; it gets a session keyring of its own; and the container's
// seccomp filter is loaded, last, since it denies keyctl.
func isolate(setup *initSetup) error {
	if err := fds.CloseOnExecFrom(3); err != nil {
		return err
	}
	if err := isolation.JoinSessionKeyring(); err != nil {
		return err
	}
	prog, err := seccomp.FromBytes(setup.Seccomp)
	if err != nil {
		return fmt.Errorf("seccomp filter from the monitor: %w", err)
	}
	return seccomp.Load(prog)
}
