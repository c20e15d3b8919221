package seccomp

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Program is an assembled filter as the kernel takes it (struct sock_filter).
type Program []unix.SockFilter

// Build assembles the filter for cfg. The library's program checks the
// architecture and refuses x32 system calls (ENOSYS), but lets a call of
// another architecture through to the default action (allow here): on x86_64
// that is the 32-bit ABI (int 0x80), with other numbers and no filtering. A
// guard in front refuses every call of a foreign architecture with ENOSYS, as
// a kernel without 32-bit emulation would; 32-bit programs do not run in a
// container.
func Build(cfg Config) (Program, error) {
	info, err := native()
	if err != nil {
		return nil, err
	}
	policy, err := Policy(cfg)
	if err != nil {
		return nil, err
	}
	body, err := policy.Assemble()
	if err != nil {
		return nil, fmt.Errorf("assemble the seccomp filter: %w", err)
	}
	guard := []bpf.Instruction{
		bpf.LoadAbsolute{Off: 4, Size: 4}, // seccomp_data.arch
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(info.ID), SkipTrue: 1},
		bpf.RetConstant{Val: uint32(errnoAction(unix.ENOSYS))},
	}
	raw, err := bpf.Assemble(append(guard, body...))
	if err != nil {
		return nil, fmt.Errorf("assemble the seccomp filter: %w", err)
	}
	if len(raw) > 4096 { // BPF_MAXINSNS
		return nil, fmt.Errorf("the seccomp filter has %d instructions, more than the kernel's 4096", len(raw))
	}
	prog := make(Program, len(raw))
	for i, r := range raw {
		prog[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	return prog, nil
}

// sockFilterSize is sizeof(struct sock_filter).
const sockFilterSize = 8

// Bytes is the program as the kernel's struct sock_filter array in memory.
func (p Program) Bytes() []byte {
	out := make([]byte, 0, len(p)*sockFilterSize)
	for _, f := range p {
		out = binary.NativeEndian.AppendUint16(out, f.Code)
		out = append(out, f.Jt, f.Jf)
		out = binary.NativeEndian.AppendUint32(out, f.K)
	}
	return out
}

// Hex is Bytes in hex, how lodge-helper receives the program in its
// environment (cmd/lodge-helper/exec.c).
func (p Program) Hex() string { return hex.EncodeToString(p.Bytes()) }

// FromBytes is the inverse of Bytes.
func FromBytes(b []byte) (Program, error) {
	if len(b) == 0 || len(b)%sockFilterSize != 0 {
		return nil, fmt.Errorf("a seccomp program of %d bytes is not a whole number of instructions", len(b))
	}
	p := make(Program, len(b)/sockFilterSize)
	for i := range p {
		c := b[i*sockFilterSize:]
		p[i] = unix.SockFilter{Code: binary.NativeEndian.Uint16(c), Jt: c[2], Jf: c[3], K: binary.NativeEndian.Uint32(c[4:])}
	}
	return p, nil
}

// Load installs p on the calling thread, which must then execute the
// program the filter is for (the thread must be locked). It does not set
// no_new_privs, so setuid programs (sudo) keep working in the container:
// the caller needs CAP_SYS_ADMIN in its user namespace instead, which the
// container's root has.
func Load(p Program) error {
	if len(p) == 0 {
		return errors.New("load the seccomp filter: empty program")
	}
	fprog := unix.SockFprog{Len: uint16(len(p)), Filter: &p[0]}
	_, _, errno := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&fprog)))
	if errno != 0 {
		return fmt.Errorf("load the seccomp filter: %w", errno)
	}
	return nil
}
