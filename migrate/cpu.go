package migrate

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
)

// A restored process goes on with the instructions it chose when it
// started: glibc, a JIT or a crypto library probes the CPU once (CPUID, or
// the kernel's hwcaps) and then uses AVX-512, SHA or AES instructions
// without asking again. On a CPU that lacks one, the process dies of
// SIGILL at its first use, at any time after the restore. The container
// shares the host's kernel and CPUID is not filtered, so what its processes
// may use is everything the source host's CPU offers user space.
//
// CRIU checks little of it: every dump writes cpuinfo.img, and a restore
// with its default --cpu-cap=fpu only checks that the target can hold the
// saved FPU state (FPU, FXSR, XSAVE). Its --cpu-cap=ins compares a fixed
// list of instruction-set features, and cpu (strict) every CPUID bit,
// which refuses any other CPU model. Both act at restore time, after the
// freeze. lodge compares before anything is frozen (the target's preflight):
// the source's flags that matter to user space, the target's flags.

// CPU is what a host's processors offer: the architecture lodge runs on and
// the flags /proc/cpuinfo lists (x86's "flags", arm64's "Features").
type CPU struct {
	Arch  string   `json:"arch"`            // runtime.GOARCH: amd64, arm64, ...
	Flags []string `json:"flags,omitempty"` // sorted
}

// LocalCPU is this host's CPU. With every, Flags are those each processor
// lists (what a process may count on wherever it is scheduled: a target's);
// else those any one lists (what a process may have seen: a source's). The
// kernel lists the same on every processor but on odd hybrid parts.
func LocalCPU(every bool) (CPU, error) {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return CPU{}, err
	}
	cpu, err := ParseCPUInfo(runtime.GOARCH, data, every)
	if err != nil {
		return cpu, fmt.Errorf("/proc/cpuinfo: %w", err)
	}
	return cpu, nil
}

// ParseCPUInfo reads /proc/cpuinfo's text for arch (see LocalCPU for
// every). Each processor's block has one flags line: "flags" on x86,
// "Features" on arm64. An architecture without either (riscv64's "isa" is
// one string, not a list) gives no flags: only the architecture is compared.
func ParseCPUInfo(arch string, data []byte, every bool) (CPU, error) {
	cpu := CPU{Arch: arch}
	key := ""
	switch arch {
	case "amd64", "386":
		key = "flags"
	case "arm64", "arm":
		key = "Features"
	default:
		return cpu, nil
	}
	count := map[string]int{}
	lines := 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.TrimSpace(name) != key {
			continue
		}
		lines++
		seen := map[string]bool{}
		for _, f := range strings.Fields(value) {
			if !seen[f] {
				seen[f] = true
				count[f]++
			}
		}
	}
	if err := sc.Err(); err != nil {
		return cpu, err
	}
	if lines == 0 {
		return cpu, fmt.Errorf("no %q line", key)
	}
	for f, n := range count {
		if !every || n == lines {
			cpu.Flags = append(cpu.Flags, f)
		}
	}
	slices.Sort(cpu.Flags)
	return cpu, nil
}

// MissingCPUFlags are the flags of source that matter to user space
// (UserSpaceFlag) and that target lacks, sorted. Both must be of one
// architecture (the caller compares Arch first).
func MissingCPUFlags(source, target CPU) []string {
	var missing []string
	for _, f := range source.Flags {
		if UserSpaceFlag(source.Arch, f) && !slices.Contains(target.Flags, f) {
			missing = append(missing, f)
		}
	}
	slices.Sort(missing)
	return slices.Compact(missing)
}

// UserSpaceFlag tells whether flag (as /proc/cpuinfo lists it on arch)
// names something a process may use, so that it faults on a CPU without
// it. On x86 most flags are not that: the kernel's own features (vmx, pti,
// smep, invpcid, xsaves), its workarounds and bugs, timer properties
// (constant_tsc, tsc_known_freq), "hypervisor", and hints that change
// speed and never faults (erms, fsrm, rep_good; hle, whose prefixes older
// CPUs ignore). Those differ between any two hosts and would refuse every
// migration between models; they are left out. What is kept is the
// instruction sets (CRIU's --cpu-cap=ins list, and the extensions added
// since: the AVX-512 and AMX families, GFNI, VAES, ...), user-space
// protection keys and shadow stacks. On arm64 every flag is a hwcap the
// kernel gives user space (AT_HWCAP) but evtstrm, its timer's event stream.
func UserSpaceFlag(arch, flag string) bool {
	switch arch {
	case "amd64", "386":
		if x86UserFlags[flag] {
			return true
		}
		for _, p := range x86UserPrefixes {
			if strings.HasPrefix(flag, p) {
				return true
			}
		}
		return false
	case "arm64", "arm":
		return flag != "evtstrm"
	}
	return false
}

// x86UserPrefixes are families whose every member is an instruction set
// (also those newer than this list: avx10, amx_complex, sha512, ...).
var x86UserPrefixes = []string{"avx", "amx", "sse", "sha", "sm3", "sm4", "3dnow"}

// x86UserFlags are the other x86 flags a process may depend on, with
// Linux's names (arch/x86/include/asm/cpufeatures.h).
var x86UserFlags = map[string]bool{
	// CPUID 1 EDX, 0x80000001 EDX
	"fpu": true, "tsc": true, "cx8": true, "sep": true, "cmov": true, "clflush": true, "mmx": true, "fxsr": true,
	"syscall": true, "mmxext": true, "rdtscp": true,
	// 0x80000001 ECX
	"lahf_lm": true, "abm": true, "misalignsse": true, "xop": true, "fma4": true, "tbm": true, "mwaitx": true,
	// CPUID 1 ECX ("pni" is SSE3)
	"pni": true, "pclmulqdq": true, "ssse3": true, "fma": true, "cx16": true, "movbe": true, "popcnt": true,
	"aes": true, "xsave": true, "f16c": true, "rdrand": true,
	// CPUID 7 and 0xd: bit manipulation, random numbers, cache lines,
	// transactions, xsave variants, user-space waits and moves
	"fsgsbase": true, "bmi1": true, "bmi2": true, "rtm": true, "rdseed": true, "adx": true, "clflushopt": true,
	"clwb": true, "xsaveopt": true, "xsavec": true, "xgetbv1": true, "clzero": true, "rdpru": true, "rdpid": true,
	"gfni": true, "vaes": true, "vpclmulqdq": true, "waitpkg": true, "cldemote": true, "movdiri": true,
	"movdir64b": true, "enqcmd": true, "serialize": true, "tsxldtrk": true, "cmpccxadd": true, "prefetchiti": true,
	"prefetchwt1": true, "nopl": true,
	// protection keys (pkey_alloc, RDPKRU) and shadow stacks, which CRIU carries
	"ospke": true, "user_shstk": true,
}
