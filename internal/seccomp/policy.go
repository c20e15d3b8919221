// Package seccomp is lodge's default seccomp filter: which system calls a
// container may not make, and the BPF program that refuses them. The program
// is built with github.com/elastic/go-seccomp-bpf (pure Go: lodge is built
// without cgo) by the monitor for init and by `lodge exec` for each command,
// and installed just before their exec (Load here, or lodge-helper's exec
// mode for the bytes of Encode).
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
	"slices"
	"sort"

	libseccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
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

// conditional denials: allowed in general, refused with EPERM for some arguments.
func conditionalDeny() []libseccomp.NameWithConditions {
	return []libseccomp.NameWithConditions{
		// umount -f of the host's network filesystems (LXC's reject_force_umount).
		{Name: "umount2", Conditions: libseccomp.ArgumentConditions{
			{Argument: 1, Operation: libseccomp.BitsSet, Value: unix.MNT_FORCE},
		}},
		{Name: "personality", Conditions: libseccomp.ArgumentConditions{
			{Argument: 0, Operation: libseccomp.BitsSet, Value: dangerousPersonality},
			{Argument: 0, Operation: libseccomp.NotEqual, Value: personalityQuery},
		}},
	}
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

// Policy is cfg as a go-seccomp-bpf policy for the native architecture: one
// group per errno, then the conditional denials, else allow.
func Policy(cfg Config) (*libseccomp.Policy, error) {
	if err := CheckNames(cfg.Deny); err != nil {
		return nil, err
	}
	if err := CheckNames(cfg.Allow); err != nil {
		return nil, err
	}
	byErrno := map[unix.Errno][]string{}
	for name, errno := range Denials(cfg) {
		byErrno[errno] = append(byErrno[errno], name)
	}
	errnos := make([]unix.Errno, 0, len(byErrno))
	for e := range byErrno {
		errnos = append(errnos, e)
	}
	slices.Sort(errnos)
	p := &libseccomp.Policy{DefaultAction: libseccomp.ActionAllow}
	for _, e := range errnos {
		names := byErrno[e]
		sort.Strings(names)
		p.Syscalls = append(p.Syscalls, libseccomp.SyscallGroup{Names: names, Action: errnoAction(e)})
	}
	var conditional []libseccomp.NameWithConditions
	for _, c := range conditionalDeny() {
		if !slices.Contains(cfg.Allow, c.Name) && !slices.Contains(cfg.Deny, c.Name) {
			conditional = append(conditional, c)
		}
	}
	// Always one group, even empty: the library refuses a policy without any.
	p.Syscalls = append(p.Syscalls, libseccomp.SyscallGroup{NamesWithCondtions: conditional, Action: errnoAction(unix.EPERM)})
	return p, nil
}

// errnoAction makes the call fail with errno e.
func errnoAction(e unix.Errno) libseccomp.Action {
	return libseccomp.ActionErrno | libseccomp.Action(uint32(e)&unix.SECCOMP_RET_DATA)
}

// native is the architecture lodge runs on; its system call table is the one
// names are checked against.
func native() (*arch.Info, error) {
	info, err := arch.GetInfo("")
	if err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	return info, nil
}
