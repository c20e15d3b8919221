package seccomp

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Program is an assembled filter as the kernel takes it (struct sock_filter).
type Program []unix.SockFilter

// Build assembles the filter for cfg: the verdicts of the program
// go-seccomp-bpf assembles for the same policy (library_test.go holds it to
// them), behind a guard. The library's program checks the
// architecture and refuses x32 system calls (ENOSYS), but lets a call of
// another architecture through to the default action (allow here): on x86_64
// that is the 32-bit ABI (int 0x80), with other numbers and no filtering. The
// guard refuses every call of a foreign architecture with ENOSYS, as a kernel
// without 32-bit emulation would; 32-bit programs do not run in a container.
func Build(cfg Config) (Program, error) {
	if err := native(); err != nil {
		return nil, err
	}
	p, err := resolve(cfg)
	if err != nil {
		return nil, err
	}
	prog := assemble(p)
	if len(prog) > maxInstructions {
		return nil, fmt.Errorf("the seccomp filter has %d instructions, more than the kernel's %d; deny fewer system calls", len(prog), maxInstructions)
	}
	return prog, nil
}

// The kernel's seccomp and BPF constants the program needs.
const (
	auditArchX86_64 = 0xc000003e // AUDIT_ARCH_X86_64
	x32SyscallBit   = 0x40000000 // __X32_SYSCALL_BIT: the x32 ABI's numbers
	maxInstructions = 4096       // BPF_MAXINSNS
	maxJump         = 255        // a conditional jump skips a uint8
	// Offsets in struct seccomp_data {int nr; u32 arch; u64 ip; u64 args[6]}.
	nrOffset   = 0
	archOffset = 4
	argsOffset = 16
	// Instruction codes.
	ldAbsW = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
	jeqK   = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
	jgeK   = unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K
	jsetK  = unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K
	retK   = unix.BPF_RET | unix.BPF_K
)

// load, jump and ret are the kernel's BPF_STMT and BPF_JUMP.
func load(off uint32) unix.SockFilter   { return unix.SockFilter{Code: ldAbsW, K: off} }
func ret(action uint32) unix.SockFilter { return unix.SockFilter{Code: retK, K: action} }
func jump(code uint16, k uint32, jt, jf uint8) unix.SockFilter {
	return unix.SockFilter{Code: code, Jt: jt, Jf: jf, K: k}
}

// assemble lays p out: the architecture guard, the x32 refusal, the groups
// of denials, the conditional denials, the refused ioctl requests, else
// allow. Every jump goes forward.
func assemble(p policy) Program {
	prog := Program{
		load(archOffset),
		jump(jeqK, auditArchX86_64, 1, 0),
		ret(errnoAction(unix.ENOSYS)),
		load(nrOffset),
		jump(jgeK, x32SyscallBit, 0, 1),
		ret(errnoAction(unix.ENOSYS)),
	}
	for _, g := range p.groups {
		for chunk := range slices.Chunk(g.nrs, maxJump) {
			prog = appendGroup(prog, chunk, errnoAction(g.errno))
		}
	}
	for _, c := range p.conditional {
		prog = appendConditional(prog, c)
	}
	if p.requests != nil {
		prog = appendRequests(prog, *p.requests)
	}
	return append(prog, ret(unix.SECCOMP_RET_ALLOW))
}

// appendGroup compares the number (in A) with each of nrs, at most maxJump
// of them so that a match reaches the action in one jump.
func appendGroup(prog Program, nrs []uint32, action uint32) Program {
	for i, nr := range nrs {
		if rest := len(nrs) - 1 - i; rest > 0 {
			prog = append(prog, jump(jeqK, nr, uint8(rest), 0))
		} else {
			prog = append(prog, jump(jeqK, nr, 0, 1))
		}
	}
	return append(prog, ret(action))
}

// appendConditional refuses c.nr with EPERM when all of c's conditions
// hold. It loads the number again: the conditions before it left an
// argument in A.
func appendConditional(prog Program, c conditional) Program {
	block := Program{load(nrOffset), jump(jeqK, c.nr, 0, 0)}
	exits := []exit{{1, false}}
	for _, cond := range c.when {
		var e exit
		block, e = appendCondition(block, cond)
		exits = append(exits, e)
	}
	block = append(block, ret(errnoAction(unix.EPERM)))
	for _, e := range exits {
		skip := uint8(len(block) - 1 - e.at) // a block is a few instructions, far below maxJump
		if e.onTrue {
			block[e.at].Jt = skip
		} else {
			block[e.at].Jf = skip
		}
	}
	return append(prog, block...)
}

// appendRequests refuses r's ioctl requests. It compares the request's low
// 32 bits only: the kernel takes ioctl's request as an unsigned int and
// drops the high word, so a 64-bit compare would let a tenant through by
// setting bits there. go-seccomp-bpf has no such compare: library_test.go
// holds this part to the library's 64-bit Equal on requests without high
// bits and pins the difference on the others.
func appendRequests(prog Program, r requests) Program {
	block := Program{
		load(nrOffset),
		jump(jeqK, r.nr, 0, uint8(len(r.values)+2)), // past the load, the compares and the ret
		load(argsOffset + 8*1),                      // the request's low word (little-endian)
	}
	return append(prog, appendGroup(block, r.values, errnoAction(r.errno))...)
}

// exit is the branch of the jump at index at that leaves a conditional
// block (the rule does not apply), to be pointed past the block's end.
type exit struct {
	at     int
	onTrue bool
}

// appendCondition tests cond, going on to the next instruction when it
// holds, and returns the branch to take when it does not. An argument is
// two 32-bit words, the high one tested first.
func appendCondition(block Program, cond condition) (Program, exit) {
	lo := uint32(argsOffset + 8*cond.arg) // x86_64 is little-endian: the low word first
	hi := lo + 4
	hiValue, loValue := uint32(cond.value>>32), uint32(cond.value)
	switch cond.op {
	case bitsSet:
		if hiValue != 0 { // a bit in the high word: holds, skip the low word
			block = append(block, load(hi), jump(jsetK, hiValue, 2, 0))
		}
		block = append(block, load(lo), jump(jsetK, loValue, 0, 0))
		return block, exit{len(block) - 1, false}
	case notEqual:
		// A different high word: holds, skip the low word; else the same
		// low word too: does not hold.
		block = append(block, load(hi), jump(jeqK, hiValue, 0, 2), load(lo), jump(jeqK, loValue, 0, 0))
		return block, exit{len(block) - 1, true}
	}
	panic(fmt.Sprintf("seccomp: a condition with unknown operation %d", cond.op)) // conditionalDeny is lodge's own
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
