package store

import (
	"errors"
	"os"
	"strings"
	"sync"
)

// Runtime state (ROOT/run) lives on persistent disk, next to the containers
// it describes, so that a lodge root stays one self-contained directory (see
// docs/architecture.md, "On disk"). A host reboot does not clear it, and the
// pid and start time it records may then name unrelated processes of the new
// boot: pid 1's start time is the same in every boot, and a monitor or init
// started early can get the same pid and tick count again. Every runtime
// state file therefore records the kernel's boot id, and a file from another
// boot counts as absent.

// ErrOtherBoot marks runtime state written in an earlier boot of the host.
var ErrOtherBoot = errors.New("written in an earlier boot of the host")

// bootIDPath is the kernel's random id of the running boot, made anew at
// every boot.
const bootIDPath = "/proc/sys/kernel/random/boot_id"

// BootID returns the id of the running boot of the host, or "" if the kernel
// does not say (no procfs): then boot ids are not compared.
func BootID() string { return bootID() }

var bootID = sync.OnceValue(func() string {
	data, err := os.ReadFile(bootIDPath)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
})

// ThisBoot reports whether state stamped with boot id recorded may describe
// the running boot. State without an id (written by a lodge before boot ids,
// or where the kernel gave none) is judged by pid and start time alone, as
// before.
func ThisBoot(recorded string) bool {
	return recorded == "" || BootID() == "" || recorded == BootID()
}
