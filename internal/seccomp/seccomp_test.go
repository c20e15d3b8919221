package seccomp

import (
	"encoding/binary"
	"slices"
	"strings"
	"testing"

	"lodge/internal/testreq"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// run evaluates the program in the BPF interpreter of golang.org/x/net/bpf
// for one system call.
func run(t *testing.T, p Program, auditArch uint32, nr uint32, args ...uint64) uint32 {
	t.Helper()
	return verdict(t, newVM(t, p), auditArch, nr, args...)
}

// newVM loads p in the BPF interpreter of golang.org/x/net/bpf.
func newVM(t *testing.T, p Program) *bpf.VM {
	t.Helper()
	raw := make([]bpf.RawInstruction, len(p))
	for i, f := range p {
		raw[i] = bpf.RawInstruction{Op: f.Code, Jt: f.Jt, Jf: f.Jf, K: f.K}
	}
	insns, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatal("program does not disassemble")
	}
	vm, err := bpf.NewVM(insns)
	if err != nil {
		t.Fatal(err)
	}
	return vm
}

// verdict is what the program in vm returns for one system call: the
// kernel's struct seccomp_data, little-endian.
func verdict(t *testing.T, vm *bpf.VM, auditArch uint32, nr uint32, args ...uint64) uint32 {
	t.Helper()
	// seccomp_data: nr, arch, instruction_pointer, args[6]. The VM loads
	// words big-endian; the kernel loads them in host order, so the data is
	// laid out with each 32-bit word in big-endian here.
	var data [64]byte
	put := func(off int, v uint32) { binary.BigEndian.PutUint32(data[off:], v) }
	put(0, nr)
	put(4, auditArch)
	for i, a := range args {
		put(16+8*i, uint32(a))       // low half first (little-endian argument)
		put(16+8*i+4, uint32(a>>32)) // high half
	}
	out, err := vm.Run(data[:])
	if err != nil {
		t.Fatal(err)
	}
	return uint32(out)
}

const auditArchI386 = 0x40000003

func nr(t *testing.T, name string) uint32 {
	t.Helper()
	n, ok := number(name)
	if !ok {
		t.Fatalf("no system call %s", name)
	}
	return n
}

func errnoRet(e unix.Errno) uint32 { return unix.SECCOMP_RET_ERRNO | uint32(e) }

func TestDefaultPolicy(t *testing.T) {
	if nativeArch(t) != auditArchX86_64 {
		t.Skip("the expectations are written for x86_64")
	}
	p, err := Build(Config{})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []uint64
		want uint32
	}{
		{"kexec_load", nil, errnoRet(unix.EPERM)},
		{"open_by_handle_at", nil, errnoRet(unix.EPERM)},
		{"keyctl", nil, errnoRet(unix.ENOSYS)},
		{"clock_settime", nil, errnoRet(unix.EPERM)},
		{"read", nil, unix.SECCOMP_RET_ALLOW},
		{"mount", nil, unix.SECCOMP_RET_ALLOW},
		{"unshare", nil, unix.SECCOMP_RET_ALLOW},
		{"setns", nil, unix.SECCOMP_RET_ALLOW},
		{"reboot", nil, unix.SECCOMP_RET_ALLOW},
		{"adjtimex", nil, unix.SECCOMP_RET_ALLOW},
		{"umount2", []uint64{0, 0}, unix.SECCOMP_RET_ALLOW},
		{"umount2", []uint64{0, unix.MNT_DETACH}, unix.SECCOMP_RET_ALLOW},
		{"umount2", []uint64{0, unix.MNT_FORCE}, errnoRet(unix.EPERM)},
		{"personality", []uint64{0}, unix.SECCOMP_RET_ALLOW},
		{"personality", []uint64{personalityQuery}, unix.SECCOMP_RET_ALLOW},
		{"personality", []uint64{0x0008}, unix.SECCOMP_RET_ALLOW},                 // PER_LINUX32
		{"personality", []uint64{0x0040000}, unix.SECCOMP_RET_ALLOW},              // ADDR_NO_RANDOMIZE
		{"personality", []uint64{0x0400000}, errnoRet(unix.EPERM)},                // READ_IMPLIES_EXEC
		{"personality", []uint64{1<<32 | personalityQuery}, errnoRet(unix.EPERM)}, // not the query
	}
	for _, c := range cases {
		if got := run(t, p, auditArchX86_64, nr(t, c.name), c.args...); got != c.want {
			t.Errorf("%s%v: got %#x, want %#x", c.name, c.args, got, c.want)
		}
	}
	// x32 and i386 calls are refused whatever they are.
	if got := run(t, p, auditArchX86_64, 0x40000000|nr(t, "read")); got != errnoRet(unix.ENOSYS) {
		t.Errorf("x32 read: got %#x", got)
	}
	if got := run(t, p, auditArchI386, 3); got != errnoRet(unix.ENOSYS) {
		t.Errorf("i386 read: got %#x", got)
	}
}

func nativeArch(t *testing.T) uint32 {
	if err := native(); err != nil {
		testreq.Skip(t, "amd64", err.Error())
	}
	return auditArchX86_64
}

func TestAllowAndDeny(t *testing.T) {
	if nativeArch(t) != auditArchX86_64 {
		t.Skip("the expectations are written for x86_64")
	}
	p, err := Build(Config{Allow: []string{"perf_event_open", "umount2", "mknod"}, Deny: []string{"mknodat", "keyctl"}})
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]uint32{
		"perf_event_open": unix.SECCOMP_RET_ALLOW, // allowed out of the defaults
		"mknod":           unix.SECCOMP_RET_ALLOW, // allowing what is allowed changes nothing
		"mknodat":         errnoRet(unix.EPERM),   // denied on top
		"keyctl":          errnoRet(unix.EPERM),   // a denial says EPERM
		"bpf":             errnoRet(unix.EPERM),   // defaults stay
		"add_key":         errnoRet(unix.ENOSYS),
	}
	for name, want := range cases {
		if got := run(t, p, auditArchX86_64, nr(t, name)); got != want {
			t.Errorf("%s: got %#x, want %#x", name, got, want)
		}
	}
	if got := run(t, p, auditArchX86_64, nr(t, "umount2"), 0, unix.MNT_FORCE); got != unix.SECCOMP_RET_ALLOW {
		t.Errorf("allowed umount2 with MNT_FORCE: got %#x", got)
	}
	// Deny wins over allow.
	d := Denials(Config{Allow: []string{"bpf", "mknod"}, Deny: []string{"mknod"}})
	if _, ok := d["bpf"]; ok {
		t.Error("bpf still denied after allow")
	}
	if d["mknod"] != unix.EPERM {
		t.Error("mknod in deny and allow is not denied")
	}
}

// TestSubvolumeRule: with NoSubvolumes the four btrfs create requests are
// refused with ENOTTY whatever the request's high word holds; other ioctls,
// the requests in other arguments or of other calls, pass; without it they
// all pass. Everything else is the same program's verdict as without it.
func TestSubvolumeRule(t *testing.T) {
	if nativeArch(t) != auditArchX86_64 {
		t.Skip("the expectations are written for x86_64")
	}
	with, err := Build(Config{NoSubvolumes: true})
	if err != nil {
		t.Fatal(err)
	}
	without, err := Build(Config{})
	if err != nil {
		t.Fatal(err)
	}
	ioctl := nr(t, "ioctl")
	for _, r := range subvolumeRequests {
		for _, high := range []uint64{0, 1 << 32, 0xffffffff << 32} {
			req := high | uint64(r)
			if got := run(t, with, auditArchX86_64, ioctl, 3, req); got != errnoRet(unix.ENOTTY) {
				t.Errorf("ioctl(3, %#x) with the rule: got %#x, want ENOTTY", req, got)
			}
			if got := run(t, without, auditArchX86_64, ioctl, 3, req); got != unix.SECCOMP_RET_ALLOW {
				t.Errorf("ioctl(3, %#x) without the rule: got %#x, want allow", req, got)
			}
		}
		if got := run(t, with, auditArchX86_64, ioctl, uint64(r), 0, uint64(r)); got != unix.SECCOMP_RET_ALLOW {
			t.Errorf("ioctl(%#x, 0, %#x): got %#x, want allow (the request is the second argument)", r, r, got)
		}
		if got := run(t, with, auditArchX86_64, nr(t, "read"), 3, uint64(r)); got != unix.SECCOMP_RET_ALLOW {
			t.Errorf("read(3, %#x): got %#x, want allow", r, got)
		}
	}
	others := map[string]uint64{
		"TIOCGWINSZ":             unix.TIOCGWINSZ,
		"FS_IOC_GETFLAGS":        unix.FS_IOC_GETFLAGS,
		"BTRFS_IOC_SNAP_DESTROY": 0x5000940f,
		"BTRFS_IOC_SUBVOL_CREATE with one bit less":         0x5000940e &^ 0x10000000,
		"BTRFS_IOC_SUBVOL_CREATE's number in the high word": 0x5000940e << 32,
	}
	for name, req := range others {
		if got := run(t, with, auditArchX86_64, ioctl, 3, req); got != unix.SECCOMP_RET_ALLOW {
			t.Errorf("ioctl %s (%#x): got %#x, want allow", name, req, got)
		}
	}
	// The rest of the program is unchanged: every other number, both
	// architectures, x32.
	for _, nr := range equivalenceNumbers() {
		if nr == ioctl {
			continue
		}
		for _, args := range argumentSets(nr) {
			for _, a := range []uint32{auditArchX86_64, auditArchI386} {
				if got, want := run(t, with, a, nr, args...), run(t, without, a, nr, args...); got != want {
					t.Fatalf("arch %#x nr %#x args %#x: %#x with the rule, %#x without", a, nr, args, got, want)
				}
			}
		}
	}
	// Denying ioctl outright wins.
	denied, err := Build(Config{NoSubvolumes: true, Deny: []string{"ioctl"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := run(t, denied, auditArchX86_64, ioctl, 3, uint64(subvolumeRequests[0])); got != errnoRet(unix.EPERM) {
		t.Errorf("denied ioctl: got %#x, want EPERM", got)
	}
}

// TestSubvolumeRequestNumbers recomputes the requests from linux/btrfs.h's
// definitions: _IOW(BTRFS_IOCTL_MAGIC, nr, struct of 4096 bytes).
func TestSubvolumeRequestNumbers(t *testing.T) {
	iow := func(nr, size uint32) uint32 { return 1<<30 | size<<16 | 0x94<<8 | nr }
	const volArgs, volArgsV2 = 8 + 4088, 8 + 8 + 8 + 4*8 + 4040 // struct btrfs_ioctl_vol_args, _v2
	want := []uint32{iow(14, volArgs), iow(24, volArgsV2), iow(1, volArgs), iow(23, volArgsV2)}
	if !slices.Equal(subvolumeRequests, want) {
		t.Errorf("subvolumeRequests = %#x, linux/btrfs.h says %#x", subvolumeRequests, want)
	}
}

func TestUnknownNames(t *testing.T) {
	if _, err := Build(Config{Deny: []string{"kexec_lod"}}); err == nil || !strings.Contains(err.Error(), "did you mean kexec_load?") {
		t.Errorf("typo: %v", err)
	}
	if err := CheckNames([]string{"mount", "nosuchsyscallatall"}); err == nil || strings.Contains(err.Error(), "did you mean") {
		t.Errorf("far from anything: %v", err)
	}
	if err := CheckNames([]string{"mount", "open_by_handle_at"}); err != nil {
		t.Error(err)
	}
}

func TestBytesRoundTrip(t *testing.T) {
	p, err := Build(Config{})
	if err != nil {
		t.Fatal(err)
	}
	q, err := FromBytes(p.Bytes())
	if err != nil || len(q) != len(p) {
		t.Fatalf("round trip: %v", err)
	}
	for i := range p {
		if p[i] != q[i] {
			t.Fatalf("instruction %d: %+v != %+v", i, p[i], q[i])
		}
	}
	if len(p.Hex()) != 2*len(p.Bytes()) {
		t.Error("hex length")
	}
	if _, err := FromBytes([]byte{1, 2, 3}); err == nil {
		t.Error("a partial instruction was accepted")
	}
}

// BenchmarkBuild is the cost the filter adds to each start and exec.
func BenchmarkBuild(b *testing.B) {
	for b.Loop() {
		p, err := Build(Config{Deny: []string{"mknodat"}, Allow: []string{"bpf"}})
		if err != nil {
			b.Fatal(err)
		}
		_ = p.Hex()
	}
}
