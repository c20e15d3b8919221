package seccomp

// The filter was built with github.com/elastic/go-seccomp-bpf; lodge now has
// the library's system call table and program layout without linking it (its
// init costs every lodge process about 0.8 ms). These tests hold the two to
// the library: the same names and numbers, the same verdict for every call.

import (
	"fmt"
	"slices"
	"sort"
	"testing"

	libseccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// libraryPolicy is cfg as a go-seccomp-bpf policy, as lodge built it with the
// library: one group per errno, then the conditional denials, else allow.
func libraryPolicy(cfg Config) *libseccomp.Policy {
	byErrno := map[unix.Errno][]string{}
	for name, errno := range Denials(cfg) {
		byErrno[errno] = append(byErrno[errno], name)
	}
	p := &libseccomp.Policy{DefaultAction: libseccomp.ActionAllow}
	errnos := make([]unix.Errno, 0, len(byErrno))
	for e := range byErrno {
		errnos = append(errnos, e)
	}
	slices.Sort(errnos)
	for _, e := range errnos {
		names := byErrno[e]
		sort.Strings(names)
		p.Syscalls = append(p.Syscalls, libseccomp.SyscallGroup{Names: names, Action: libraryErrno(e)})
	}
	var conditional []libseccomp.NameWithConditions
	for _, c := range conditionalDeny {
		if slices.Contains(cfg.Allow, c.name) || slices.Contains(cfg.Deny, c.name) {
			continue
		}
		nc := libseccomp.NameWithConditions{Name: c.name}
		for _, cond := range c.when {
			op := map[op]libseccomp.Operation{bitsSet: libseccomp.BitsSet, notEqual: libseccomp.NotEqual}[cond.op]
			nc.Conditions = append(nc.Conditions, libseccomp.Condition{Argument: cond.arg, Operation: op, Value: cond.value})
		}
		conditional = append(conditional, nc)
	}
	// Always one group, even empty: the library refuses a policy without any.
	p.Syscalls = append(p.Syscalls, libseccomp.SyscallGroup{NamesWithCondtions: conditional, Action: libraryErrno(unix.EPERM)})
	if cfg.NoSubvolumes && !slices.Contains(cfg.Deny, "ioctl") {
		// The library compares all 64 bits (Equal); lodge the low 32 only.
		// They agree on requests without high bits, the only ones
		// argumentSets passes; TestSubvolumeRequestsHighWord
		// covers the others.
		var requests []libseccomp.NameWithConditions
		for _, r := range subvolumeRequests {
			requests = append(requests, libseccomp.NameWithConditions{Name: "ioctl", Conditions: []libseccomp.Condition{
				{Argument: 1, Operation: libseccomp.Equal, Value: uint64(r)},
			}})
		}
		p.Syscalls = append(p.Syscalls, libseccomp.SyscallGroup{NamesWithCondtions: requests, Action: libraryErrno(unix.ENOTTY)})
	}
	return p
}

func libraryErrno(e unix.Errno) libseccomp.Action {
	return libseccomp.ActionErrno | libseccomp.Action(uint32(e)&unix.SECCOMP_RET_DATA)
}

// libraryProgram is the library's program for cfg; guarded, with the guard
// lodge put in front of it (see Build).
func libraryProgram(t *testing.T, cfg Config, guarded bool) *bpf.VM {
	t.Helper()
	body, err := libraryPolicy(cfg).Assemble()
	if err != nil {
		t.Fatalf("the library's program for %+v: %v", cfg, err)
	}
	if guarded {
		body = append([]bpf.Instruction{
			bpf.LoadAbsolute{Off: 4, Size: 4},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: auditArchX86_64, SkipTrue: 1},
			bpf.RetConstant{Val: errnoAction(unix.ENOSYS)},
		}, body...)
	}
	vm, err := bpf.NewVM(body)
	if err != nil {
		t.Fatalf("the library's program for %+v: %v", cfg, err)
	}
	return vm
}

// equivalenceConfigs are the default policy and allow/deny combinations
// that change each part of the program.
var equivalenceConfigs = []Config{
	{},
	{Allow: []string{"umount2"}},
	{Allow: []string{"personality"}},
	{Deny: []string{"umount2", "personality"}},
	{Allow: []string{"perf_event_open", "umount2", "mknod"}, Deny: []string{"mknodat", "keyctl"}},
	{Allow: []string{"bpf", "keyctl", "add_key", "request_key"}, Deny: []string{"reboot"}},
	{Allow: defaultNames(), Deny: []string{"mount"}},
	{Allow: append(defaultNames(), "umount2", "personality")}, // allows everything
	{Deny: manyNames()}, // long groups: the library's jumps of more than 255
	{NoSubvolumes: true},
	{NoSubvolumes: true, Allow: append(defaultNames(), "umount2", "personality")},
	{NoSubvolumes: true, Deny: []string{"ioctl"}},
	{NoSubvolumes: true, Deny: manyNames()},
}

func defaultNames() []string {
	var names []string
	for _, r := range defaultDeny {
		names = append(names, r.name)
	}
	return names
}

// manyNames is most system calls: a group longer than a jump can skip.
func manyNames() []string {
	var names []string
	for _, s := range syscallsX86_64 {
		if s.name != "read" && s.name != "exit_group" && s.name != "umount2" {
			names = append(names, s.name)
		}
	}
	return names
}

// equivalenceNumbers are every native number up to 1023, x32's (the native
// ones with the x32 bit), and the edges around them.
func equivalenceNumbers() []uint32 {
	var nrs []uint32
	for nr := range uint32(1024) {
		nrs = append(nrs, nr, x32SyscallBit|nr)
	}
	return append(nrs, x32SyscallBit-1, 0x7fffffff, 0x80000000, 0xffffffff)
}

// argumentValues are the values the conditions tell apart: none, the bits
// they test alone and together, the personality query, and each in the high
// word of a 64-bit argument.
var argumentValues = []uint64{
	0, 1, 2, unix.MNT_FORCE | unix.MNT_DETACH, 0x87, 0x0008, 0x0040000,
	0x0100000, 0x0200000, 0x0400000, dangerousPersonality, personalityQuery,
	personalityQuery &^ dangerousPersonality, 1 << 32, 1<<32 | personalityQuery,
	1<<32 | unix.MNT_FORCE, 0x0400000 << 32, 0xffffffff00000000, ^uint64(0),
}

// argumentSets are the argument vectors tried for a system call: every
// pair of values in the first two arguments (the conditions' ones) for the
// calls that have conditions, a few for the others (the number decides).
func argumentSets(nr uint32) [][]uint64 {
	sets := [][]uint64{nil, {^uint64(0), ^uint64(0), 3, 4, 5, 6}, {0x87, 0x87}, {1 << 32, 0x0400000}}
	umount2, _ := number("umount2")
	personality, _ := number("personality")
	if ioctl, _ := number("ioctl"); nr == ioctl {
		for _, r := range subvolumeRequests {
			// The request, its neighbours, and the request in the other
			// arguments; no high bits (see libraryPolicy).
			sets = append(sets, []uint64{0, uint64(r)}, []uint64{0, uint64(r ^ 1)}, []uint64{0, uint64(r + 1)},
				[]uint64{uint64(r), 0, uint64(r)})
		}
		return sets
	}
	if nr != umount2 && nr != personality {
		return sets
	}
	for _, a := range argumentValues {
		for _, b := range argumentValues {
			sets = append(sets, []uint64{a, b})
		}
	}
	return sets
}

// TestSameVerdictsAsLibrary runs lodge's program and the library's (with
// lodge's guard in front, as lodge installed it) in a BPF interpreter for
// every system call number, both x86 architectures, and the arguments the
// conditions look at: the action and errno must be the same. Without the
// guard, the library allows every i386 call: that difference is checked too.
func TestSameVerdictsAsLibrary(t *testing.T) {
	if nativeArch(t) != auditArchX86_64 {
		t.Skip("the library's program is assembled for the native architecture; lodge's for x86_64")
	}
	for _, cfg := range equivalenceConfigs {
		t.Run(fmt.Sprintf("allow=%d,deny=%d,nosubvolumes=%v", len(cfg.Allow), len(cfg.Deny), cfg.NoSubvolumes), func(t *testing.T) {
			prog, err := Build(cfg)
			if err != nil {
				t.Fatal(err)
			}
			ours, guarded, bare := newVM(t, prog), libraryProgram(t, cfg, true), libraryProgram(t, cfg, false)
			checked := 0
			for _, nr := range equivalenceNumbers() {
				for _, args := range argumentSets(nr) {
					for _, auditArch := range []uint32{auditArchX86_64, auditArchI386} {
						got := verdict(t, ours, auditArch, nr, args...)
						if want := verdict(t, guarded, auditArch, nr, args...); got != want {
							t.Fatalf("arch %#x nr %#x args %#x: lodge says %#x, the library (guarded) %#x", auditArch, nr, args, got, want)
						}
						want := verdict(t, bare, auditArch, nr, args...)
						if auditArch == auditArchI386 {
							want = errnoRet(unix.ENOSYS) // the guard's intentional difference
						}
						if got != want {
							t.Fatalf("arch %#x nr %#x args %#x: lodge says %#x, the library %#x", auditArch, nr, args, got, want)
						}
						checked++
					}
				}
			}
			t.Logf("%d calls, the same verdicts; %d instructions (the library %d with the guard)", checked, len(prog), libraryLen(t, cfg)+3)
		})
	}
}

// TestLibraryAllowsI386 pins the difference the guard makes, so that the
// equivalence test's exception for i386 stays needed.
func TestLibraryAllowsI386(t *testing.T) {
	if nativeArch(t) != auditArchX86_64 {
		t.Skip("written for x86_64")
	}
	kexecLoadI386 := uint32(arch.I386.SyscallNames["kexec_load"])
	if got := verdict(t, libraryProgram(t, Config{}, false), auditArchI386, kexecLoadI386); got != unix.SECCOMP_RET_ALLOW {
		t.Errorf("the library's program says %#x for i386 kexec_load; the guard may no longer be needed", got)
	}
}

func libraryLen(t *testing.T, cfg Config) int {
	body, err := libraryPolicy(cfg).Assemble()
	if err != nil {
		t.Fatal(err)
	}
	return len(body)
}

// TestHighWordConditionsAsLibrary covers what lodge's own conditions do not
// reach: values with bits in an argument's high word, and conditions on
// other arguments, against the library's program for the same rules.
func TestHighWordConditionsAsLibrary(t *testing.T) {
	if nativeArch(t) != auditArchX86_64 {
		t.Skip("written for x86_64")
	}
	saved := conditionalDeny
	t.Cleanup(func() { conditionalDeny = saved })
	conditionalDeny = []conditionalRule{
		{"umount2", []condition{{arg: 1, op: bitsSet, value: 1<<32 | unix.MNT_FORCE}}},
		{"personality", []condition{
			{arg: 0, op: notEqual, value: 1<<32 | personalityQuery},
			{arg: 1, op: bitsSet, value: 0x0400000 << 32},
		}},
	}
	prog, err := Build(Config{})
	if err != nil {
		t.Fatal(err)
	}
	ours, lib := newVM(t, prog), libraryProgram(t, Config{}, true)
	for _, name := range []string{"umount2", "personality", "read"} {
		nr := nr(t, name)
		for _, args := range argumentSets(nr) {
			if got, want := verdict(t, ours, auditArchX86_64, nr, args...), verdict(t, lib, auditArchX86_64, nr, args...); got != want {
				t.Errorf("%s%#x: lodge says %#x, the library %#x", name, args, got, want)
			}
		}
	}
}

// TestSubvolumeRequestsHighWord pins where lodge's ioctl rule and the
// library's closest one (Equal, 64 bits) differ: a request with bits in the
// high word. The kernel drops them (ioctl's request is an unsigned int), so
// the library's rule would let a tenant through; lodge's refuses it.
func TestSubvolumeRequestsHighWord(t *testing.T) {
	if nativeArch(t) != auditArchX86_64 {
		t.Skip("written for x86_64")
	}
	cfg := Config{NoSubvolumes: true}
	prog, err := Build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ours, lib := newVM(t, prog), libraryProgram(t, cfg, true)
	ioctl := nr(t, "ioctl")
	for _, r := range subvolumeRequests {
		for _, high := range []uint64{1 << 32, 0x80000000 << 32, 0xffffffff << 32} {
			req := high | uint64(r)
			if got := verdict(t, ours, auditArchX86_64, ioctl, 3, req); got != errnoRet(unix.ENOTTY) {
				t.Errorf("ioctl(3, %#x): lodge says %#x, want ENOTTY", req, got)
			}
			if got := verdict(t, lib, auditArchX86_64, ioctl, 3, req); got != unix.SECCOMP_RET_ALLOW {
				t.Errorf("ioctl(3, %#x): the library says %#x; its 64-bit compare may have changed", req, got)
			}
		}
	}
}
