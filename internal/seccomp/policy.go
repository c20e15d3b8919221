// Package seccomp is lodge's default seccomp filter: which system calls a
// container may not make, and the BPF program that refuses them. The program
// is assembled here (program.go) by the monitor for init and by `lodge exec`
// for each command, and installed just before their exec (Load here, or
// lodge-helper's exec mode for the bytes of Bytes). It answers every call as
// github.com/elastic/go-seccomp-bpf's program for the same policy does (a test
// proves it) without linking the library: the library's init builds maps of
// every architecture's system calls, which every lodge process would pay for.
//
// The filter is a deny list, like LXC's and Incus's defaults: a system
// container runs a whole distribution (systemd mounts, creates namespaces,
// reboots, runs nested containers), and the user namespace already withholds
// everything that needs host privileges. The filter removes kernel interfaces
// that are dangerous or host-wide even where the kernel would allow them in a
// user namespace, so their bugs are out of a tenant's reach. A denied call
// fails with an errno (never a kill): software that probes for a feature
// carries on without it.
package seccomp

import (
	"fmt"
	"maps"
	"slices"
	"sort"

	"golang.org/x/sys/unix"
)

// Config is what a container's configuration changes in the filter.
type Config struct {
	Deny  []string // refused with EPERM on top of the defaults (security.syscalls.deny)
	Allow []string // taken out of the defaults (security.syscalls.allow); Deny wins
	// Nesting (security.nesting) changes nothing in the filter: all a nested
	// container manager needs (mount and the new mount API, unshare, setns,
	// clone3 with namespace flags, pivot_root, seccomp itself) is allowed by
	// default, and what the filter denies (bpf for device programs, keyrings)
	// lodge, LXC and Incus do without inside a container.
	Nesting bool
	// NoSubvolumes refuses the btrfs ioctls that create subvolumes and
	// snapshots (see subvolumeRequests). Set for a container with a disk
	// limit; Allow and Deny do not change it (Deny of ioctl refuses all
	// ioctls anyway).
	NoSubvolumes bool
}

// rule is one default denial.
type rule struct {
	name  string
	errno unix.Errno
}

// defaultDeny is the default filter. EPERM where a container lacks the
// privilege (what the kernel answers an unprivileged caller), ENOSYS where
// software should think the kernel has no such feature and fall back quietly.
var defaultDeny = []rule{
	// Replacing or extending the host's kernel.
	{"kexec_load", unix.EPERM}, {"kexec_file_load", unix.EPERM},
	{"init_module", unix.EPERM}, {"finit_module", unix.EPERM}, {"delete_module", unix.EPERM},
	// Opens any file of a filesystem by handle, around the mount tree (the
	// "shocker" escape); name_to_handle_at stays: systemd uses it for mount ids.
	{"open_by_handle_at", unix.EPERM},
	// Large kernel attack surfaces that a system container does not need.
	{"bpf", unix.EPERM}, {"perf_event_open", unix.EPERM}, {"userfaultfd", unix.EPERM},
	{"io_uring_setup", unix.EPERM}, {"io_uring_enter", unix.EPERM}, {"io_uring_register", unix.EPERM},
	// Hardware and host-wide state.
	{"iopl", unix.EPERM}, {"ioperm", unix.EPERM},
	{"swapon", unix.EPERM}, {"swapoff", unix.EPERM}, {"acct", unix.EPERM},
	{"syslog", unix.EPERM}, // the host's kernel log
	// Quotas are administered by the host; a container has no business with
	// the quota code of the filesystems it sits on.
	{"quotactl", unix.EPERM}, {"quotactl_fd", unix.EPERM},
	// Time is not namespaced: setting the clock would set the host's.
	// adjtimex and clock_adjtime stay: they also read the clock's state
	// (timedatectl, systemd's "NTP synchronized"), and changing it needs
	// CAP_SYS_TIME over the host, which a container never has.
	{"settimeofday", unix.EPERM}, {"clock_settime", unix.EPERM},
	// Keyrings are not namespaced: quotas and keys are per host uid, and the
	// keyring code is a frequent source of bugs. ENOSYS, as LXC and Incus do,
	// so systemd and others think the kernel has no keyring support.
	{"keyctl", unix.ENOSYS}, {"add_key", unix.ENOSYS}, {"request_key", unix.ENOSYS},
	// Obsolete interfaces, gone or unused.
	{"lookup_dcookie", unix.EPERM}, {"nfsservctl", unix.EPERM}, {"uselib", unix.EPERM},
	{"_sysctl", unix.EPERM},
}

// Personality flags that weaken the address space layout for exploits
// (READ_IMPLIES_EXEC, ADDR_COMPAT_LAYOUT, MMAP_PAGE_ZERO).
const dangerousPersonality = 0x0400000 | 0x0200000 | 0x0100000

// personalityQuery is personality(0xffffffff): it reads the persona.
const personalityQuery = 0xffffffff

// op is how a condition compares a 64-bit system call argument.
type op int

const (
	bitsSet  op = iota // any of the value's bits is set in the argument
	notEqual           // the argument is not the value
)

// condition holds for a call whose argument arg compares with value by op.
type condition struct {
	arg   uint32 // 0 to 5
	op    op
	value uint64
}

// conditionalRule refuses name with EPERM when all its conditions hold.
type conditionalRule struct {
	name string
	when []condition
}

// conditionalDeny is allowed in general, refused for some arguments.
var conditionalDeny = []conditionalRule{
	// umount -f of the host's network filesystems (LXC's reject_force_umount).
	{"umount2", []condition{{arg: 1, op: bitsSet, value: unix.MNT_FORCE}}},
	{"personality", []condition{
		{arg: 0, op: bitsSet, value: dangerousPersonality},
		{arg: 0, op: notEqual, value: personalityQuery},
	}},
}

// subvolumeRequests are the ioctl requests that create a btrfs subvolume or
// snapshot (linux/btrfs.h: BTRFS_IOC_SUBVOL_CREATE, _V2, BTRFS_IOC_SNAP_CREATE,
// _V2, _IOW(0x94, nr, 4096-byte args); checked against the uapi header).
// A container's disk limit on btrfs is a qgroup limit on its root subvolume,
// but creating a subvolume needs no privilege, only write access to the
// directory, and a nested subvolume has its own qgroup without a limit: a
// tenant would write past its limit there. They are refused with ENOTTY,
// what a filesystem without subvolumes answers, so systemd-tmpfiles,
// machined and the like make plain directories instead. Deleting a
// subvolume stays allowed: the container may clean up what it made before
// its limit.
var subvolumeRequests = []uint32{
	0x5000940e, // BTRFS_IOC_SUBVOL_CREATE
	0x50009418, // BTRFS_IOC_SUBVOL_CREATE_V2
	0x50009401, // BTRFS_IOC_SNAP_CREATE
	0x50009417, // BTRFS_IOC_SNAP_CREATE_V2
}

// Denials returns the system calls the filter refuses unconditionally for
// cfg, with their errno.
func Denials(cfg Config) map[string]unix.Errno {
	denied := map[string]unix.Errno{}
	for _, r := range defaultDeny {
		denied[r.name] = r.errno
	}
	for _, name := range cfg.Allow {
		delete(denied, name)
	}
	for _, name := range cfg.Deny {
		denied[name] = unix.EPERM
	}
	return denied
}

// policy is cfg in system call numbers, what Build assembles.
type policy struct {
	groups      []group       // the unconditional denials, one group per errno, by errno
	conditional []conditional // the conditional denials cfg neither allows nor denies outright
	requests    *requests     // the ioctl requests refused, if any
}

// requests refuses the ioctl (number nr) requests in values with errno.
type requests struct {
	nr     uint32
	values []uint32
	errno  unix.Errno
}

// group is system calls refused with the same errno.
type group struct {
	errno unix.Errno
	nrs   []uint32
}

// conditional is a conditionalRule in numbers.
type conditional struct {
	nr   uint32
	when []condition
}

// resolve checks cfg's names and turns cfg into numbers.
func resolve(cfg Config) (policy, error) {
	if err := CheckNames(cfg.Deny); err != nil {
		return policy{}, err
	}
	if err := CheckNames(cfg.Allow); err != nil {
		return policy{}, err
	}
	byErrno := map[unix.Errno][]string{}
	for name, errno := range Denials(cfg) {
		byErrno[errno] = append(byErrno[errno], name)
	}
	var p policy
	for _, e := range slices.Sorted(maps.Keys(byErrno)) {
		names := byErrno[e]
		sort.Strings(names) // the same program for the same cfg
		g := group{errno: e}
		for _, name := range names {
			nr, err := mustNumber(name)
			if err != nil {
				return policy{}, err
			}
			g.nrs = append(g.nrs, nr)
		}
		p.groups = append(p.groups, g)
	}
	for _, r := range conditionalDeny {
		if slices.Contains(cfg.Allow, r.name) || slices.Contains(cfg.Deny, r.name) {
			continue
		}
		nr, err := mustNumber(r.name)
		if err != nil {
			return policy{}, err
		}
		p.conditional = append(p.conditional, conditional{nr: nr, when: r.when})
	}
	if cfg.NoSubvolumes && !slices.Contains(cfg.Deny, "ioctl") {
		nr, err := mustNumber("ioctl")
		if err != nil {
			return policy{}, err
		}
		p.requests = &requests{nr: nr, values: subvolumeRequests, errno: unix.ENOTTY}
	}
	return p, nil
}

// mustNumber is the number of a name of lodge's own lists (cfg's are
// checked before): missing, the table and the lists disagree.
func mustNumber(name string) (uint32, error) {
	nr, ok := number(name)
	if !ok {
		return 0, fmt.Errorf("seccomp: the default filter names %q, which is not a system call on %s", name, archName)
	}
	return nr, nil
}

// errnoAction makes the call fail with errno e.
func errnoAction(e unix.Errno) uint32 {
	return unix.SECCOMP_RET_ERRNO | uint32(e)&unix.SECCOMP_RET_DATA
}
