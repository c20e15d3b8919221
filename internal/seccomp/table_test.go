package seccomp

import (
	"testing"

	"github.com/elastic/go-seccomp-bpf/arch"
)

// TestTableIsTheLibrarys fails when zsyscalls_x86_64.go and the library's
// table differ: run `go generate ./internal/seccomp` after updating it.
func TestTableIsTheLibrarys(t *testing.T) {
	lib := arch.X86_64.SyscallNames
	if len(syscallsX86_64) != len(lib) {
		t.Errorf("the table has %d system calls, the library %d", len(syscallsX86_64), len(lib))
	}
	for i, s := range syscallsX86_64 {
		if nr, ok := lib[s.name]; !ok || uint32(nr) != s.nr {
			t.Errorf("%s is %d in the table, %d (known: %v) in the library", s.name, s.nr, nr, ok)
		}
		if i > 0 && syscallsX86_64[i-1].name >= s.name {
			t.Errorf("the table is not sorted by name at %s", s.name)
		}
	}
	for name, nr := range lib {
		if got, ok := number(name); !ok || got != uint32(nr) {
			t.Errorf("number(%s) = %d, %v; the library says %d", name, got, ok, nr)
		}
	}
	if arch.X86_64.ID != auditArchX86_64 || arch.X32.SeccompMask != x32SyscallBit || arch.I386.ID != auditArchI386 {
		t.Error("the architecture constants differ from the library's")
	}
}
