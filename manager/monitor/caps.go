package monitor

import (
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// DroppedCapabilities are removed from the bounding set of every process in a
// container (init and lodge exec). Inside its user namespace the container's
// root holds them anyway only over its own namespaces, but systemd and others
// take their presence as a promise: with CAP_SYS_RAWIO present
// sys-kernel-debug.mount and sys-kernel-tracing.mount try to mount and fail,
// with CAP_AUDIT_* journald's audit socket fails, with CAP_SYS_MODULE or
// CAP_SYS_TIME units that cannot work in a container start. Dropping them is
// what systemd's Container Interface asks for (CAP_AUDIT_*) and what LXC's
// common configuration does (mac_admin, mac_override, sys_time, sys_module,
// sys_rawio).
var DroppedCapabilities = []uintptr{
	unix.CAP_SYS_MODULE, unix.CAP_SYS_RAWIO, unix.CAP_SYS_TIME,
	unix.CAP_AUDIT_CONTROL, unix.CAP_AUDIT_READ, unix.CAP_AUDIT_WRITE,
	unix.CAP_MAC_ADMIN, unix.CAP_MAC_OVERRIDE,
}

// dropCapabilities removes DroppedCapabilities from the calling thread's
// bounding set; the thread that executes init must call it.
func dropCapabilities() error {
	for _, c := range DroppedCapabilities {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, c, 0, 0, 0); err != nil {
			return fmt.Errorf("drop capability %d: %w", c, err)
		}
	}
	return nil
}

// DroppedCapabilitiesList is DroppedCapabilities as lodge-helper reads it
// ($_LODGE_NSEXEC_DROP_CAPS): comma-separated numbers.
func DroppedCapabilitiesList() string {
	nums := make([]string, len(DroppedCapabilities))
	for i, c := range DroppedCapabilities {
		nums[i] = strconv.Itoa(int(c))
	}
	return strings.Join(nums, ",")
}
