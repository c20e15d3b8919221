package migrate

import (
	"reflect"
	"runtime"
	"slices"
	"testing"
)

// x86Info is two processors of an Intel host as /proc/cpuinfo shows them
// (shortened): the second lacks avx512f, as a hybrid part's could; "vmx
// flags" and "bugs" are other lines.
const x86Info = `processor	: 0
vendor_id	: GenuineIntel
flags		: fpu tsc cx8 sse sse2 constant_tsc hypervisor vmx pti erms sse4_2 aes avx avx2 avx512f sha_ni
vmx flags	: vnmi preemption_timer ept
bugs		: spectre_v1 spectre_v2

processor	: 1
vendor_id	: GenuineIntel
flags		: fpu tsc cx8 sse sse2 constant_tsc hypervisor vmx pti erms sse4_2 aes avx avx2 sha_ni
vmx flags	: vnmi preemption_timer ept
bugs		: spectre_v1 spectre_v2
`

const arm64Info = `processor	: 0
BogoMIPS	: 50.00
Features	: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics cpuid
CPU implementer	: 0x41

processor	: 1
BogoMIPS	: 50.00
Features	: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics cpuid
CPU implementer	: 0x41
`

func TestParseCPUInfo(t *testing.T) {
	anyOf, err := ParseCPUInfo("amd64", []byte(x86Info), false)
	if err != nil {
		t.Fatal(err)
	}
	every, err := ParseCPUInfo("amd64", []byte(x86Info), true)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"aes", "avx", "avx2", "constant_tsc", "cx8", "erms", "fpu", "hypervisor", "pti", "sha_ni", "sse", "sse2", "sse4_2", "tsc", "vmx"}
	if !reflect.DeepEqual(every.Flags, want) || every.Arch != "amd64" {
		t.Errorf("every processor's flags: %v", every)
	}
	if !reflect.DeepEqual(anyOf.Flags, slices.Sorted(slices.Values(append(want, "avx512f")))) {
		t.Errorf("any processor's flags: %v", anyOf.Flags)
	}
	arm, err := ParseCPUInfo("arm64", []byte(arm64Info), true)
	if err != nil || len(arm.Flags) != 10 || !slices.Contains(arm.Flags, "sha2") {
		t.Errorf("arm64: %v, %v", arm, err)
	}
	if _, err := ParseCPUInfo("amd64", []byte(arm64Info), true); err == nil {
		t.Error("amd64 without a flags line: no error")
	}
	if c, err := ParseCPUInfo("riscv64", []byte("isa : rv64imafdc\n"), true); err != nil || len(c.Flags) != 0 {
		t.Errorf("riscv64: %v, %v", c, err)
	}
}

func TestMissingCPUFlags(t *testing.T) {
	source := CPU{Arch: "amd64", Flags: []string{"aes", "avx", "avx512_bf16", "avx512f", "constant_tsc", "erms", "fsrm", "hypervisor",
		"ospke", "pti", "sha_ni", "sse4_2", "tsc_known_freq", "vmx", "xsaves"}}
	target := CPU{Arch: "amd64", Flags: []string{"aes", "avx", "sse4_2"}}
	// The kernel's own features, timer properties and speed hints are not
	// what a process can fault on.
	want := []string{"avx512_bf16", "avx512f", "ospke", "sha_ni"}
	if got := MissingCPUFlags(source, target); !reflect.DeepEqual(got, want) {
		t.Errorf("missing %v, want %v", got, want)
	}
	if got := MissingCPUFlags(target, source); len(got) != 0 {
		t.Errorf("a target with more: missing %v", got)
	}
	// A newer family member than any list: its prefix says what it is.
	if !UserSpaceFlag("amd64", "avx10_2") || !UserSpaceFlag("amd64", "amx_complex") || UserSpaceFlag("amd64", "ssbd") || UserSpaceFlag("amd64", "sev_es") {
		t.Error("prefixes")
	}
	armSource := CPU{Arch: "arm64", Flags: []string{"fp", "asimd", "evtstrm", "sve", "sha512"}}
	armTarget := CPU{Arch: "arm64", Flags: []string{"fp", "asimd"}}
	if got := MissingCPUFlags(armSource, armTarget); !reflect.DeepEqual(got, []string{"sha512", "sve"}) {
		t.Errorf("arm64: missing %v", got)
	}
}

// TestLocalCPU: this host's /proc/cpuinfo parses, and a host has every
// flag it offers.
func TestLocalCPU(t *testing.T) {
	anyOf, err := LocalCPU(false)
	if err != nil {
		t.Fatal(err)
	}
	every, err := LocalCPU(true)
	if err != nil {
		t.Fatal(err)
	}
	if anyOf.Arch != runtime.GOARCH {
		t.Errorf("arch %q", anyOf.Arch)
	}
	if (runtime.GOARCH == "amd64" || runtime.GOARCH == "arm64") && len(every.Flags) == 0 {
		t.Errorf("no flags on %s", runtime.GOARCH)
	}
	// A migration between two hosts like this one: the source offers the
	// flags of any of its processors, the target has those of every one.
	if m := MissingCPUFlags(anyOf, every); len(m) != 0 {
		t.Errorf("missing on this host itself: %v", m)
	}
	t.Logf("%s: %d flags, %d common to every processor", anyOf.Arch, len(anyOf.Flags), len(every.Flags))
}
