// Package isolation holds what confines every process of a container, init
// and each `lodge exec` command alike: the capability bounding set, a session
// keyring of its own and the seccomp filter.
package isolation

import (
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// DroppedCapabilities are removed from the bounding set of every process in a
// container (init and lodge exec).
//
// The bounding set is therefore every capability the kernel knows but these:
// CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_FSETID,
// CAP_KILL, CAP_SETGID, CAP_SETUID, CAP_SETPCAP, CAP_LINUX_IMMUTABLE,
// CAP_NET_BIND_SERVICE, CAP_NET_BROADCAST, CAP_NET_ADMIN, CAP_NET_RAW,
// CAP_IPC_LOCK, CAP_IPC_OWNER, CAP_SYS_CHROOT, CAP_SYS_PTRACE, CAP_SYS_PACCT,
// CAP_SYS_ADMIN, CAP_SYS_BOOT, CAP_SYS_NICE, CAP_SYS_RESOURCE,
// CAP_SYS_TTY_CONFIG, CAP_MKNOD, CAP_LEASE, CAP_SETFCAP, CAP_SYSLOG,
// CAP_WAKE_ALARM, CAP_BLOCK_SUSPEND, CAP_PERFMON, CAP_BPF and
// CAP_CHECKPOINT_RESTORE. All of them are capabilities in the container's
// user namespace: they act on what that namespace owns (its mounts, network,
// processes, files of its id range), never on the host's, whose checks ask
// for the capability in the initial user namespace. The kept ones are what a
// distribution's init and services expect of root (systemd mounts, sets up
// networking, changes ids, reboots the container); the seccomp filter
// (internal/seccomp) takes away the kernel interfaces that some of them would
// otherwise reach in a user namespace (bpf, perf_event_open, syslog).
//
// The dropped ones would also act only on the container's own namespaces,
// but systemd and others take their presence as a promise: with CAP_SYS_RAWIO present
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

// DropCapabilities removes DroppedCapabilities from the calling thread's
// bounding set; the thread that executes init must call it.
func DropCapabilities() error {
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
