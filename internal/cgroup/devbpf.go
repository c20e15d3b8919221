package cgroup

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The cgroup2 device program. cgroup2 has no devices controller: the kernel
// asks the BPF_CGROUP_DEVICE programs attached to a process's cgroup and its
// ancestors, and allows an access only if every one returns 1.
//
// The program is encoded here rather than with github.com/cilium/ebpf: that
// library (even its asm package alone) added about 1 ms to every lodge
// command's start-up, measured on `lodge list`, for a program of a few
// dozen instructions that never changes. devbpf_test.go assembles the same
// program with cilium/ebpf's asm package and insists on identical bytes, and
// the kernel's verifier checks it at every load.

// BPF opcodes used by the program (linux/bpf.h, linux/bpf_common.h).
const (
	opLoadWord = 0x61 // BPF_LDX | BPF_MEM | BPF_W: dst = *(u32 *)(src + off)
	opAndImm   = 0x57 // BPF_ALU64 | BPF_AND | BPF_K
	opRshImm   = 0x77 // BPF_ALU64 | BPF_RSH | BPF_K
	opMovImm   = 0xb7 // BPF_ALU64 | BPF_MOV | BPF_K
	opMovReg   = 0xbf // BPF_ALU64 | BPF_MOV | BPF_X
	opJneImm   = 0x55 // BPF_JMP | BPF_JNE | BPF_K
	opJneReg   = 0x5d // BPF_JMP | BPF_JNE | BPF_X
	opExit     = 0x95 // BPF_JMP | BPF_EXIT
)

// struct bpf_cgroup_dev_ctx: access_type (type in the low 16 bits, access
// in the high 16), major, minor; all u32.
const (
	devTypeBlock = 1 // BPF_DEVCG_DEV_BLOCK
	devTypeChar  = 2 // BPF_DEVCG_DEV_CHAR
	accessMknod  = 1 // BPF_DEVCG_ACC_MKNOD
	accessRead   = 2 // BPF_DEVCG_ACC_READ
	accessWrite  = 4 // BPF_DEVCG_ACC_WRITE
)

// insn is one BPF instruction (struct bpf_insn).
type insn struct {
	Op       uint8
	Dst, Src uint8
	Off      int16
	Imm      int32
}

func (i insn) encode(b []byte) {
	b[0] = i.Op
	b[1] = i.Dst&0xf | i.Src<<4
	binary.LittleEndian.PutUint16(b[2:], uint16(i.Off))
	binary.LittleEndian.PutUint32(b[4:], uint32(i.Imm))
}

// Registers: r1 holds the context on entry; the program keeps the device
// type in r2, the requested access in r3, major in r4, minor in r5.
const (
	r0, r1, r2, r3, r4, r5 = 0, 1, 2, 3, 4, 5
)

// deviceProgram compiles rules into a program that returns 1 (allow) when a
// rule matches the device and covers all the requested access, else 0.
// It is the program runc and systemd generate for the same purpose.
func deviceProgram(rules []DeviceRule) []insn {
	prog := []insn{
		{Op: opLoadWord, Dst: r2, Src: r1, Off: 0},
		{Op: opAndImm, Dst: r2, Imm: 0xffff},
		{Op: opLoadWord, Dst: r3, Src: r1, Off: 0},
		{Op: opRshImm, Dst: r3, Imm: 16},
		{Op: opLoadWord, Dst: r4, Src: r1, Off: 4},
		{Op: opLoadWord, Dst: r5, Src: r1, Off: 8},
	}
	for _, r := range rules {
		prog = append(prog, ruleBlock(r)...)
	}
	return append(prog, insn{Op: opMovImm, Dst: r0, Imm: 0}, insn{Op: opExit})
}

// ruleBlock is one rule's test: each jump skips to the end of the block
// (the next rule) when its part of the rule does not match.
func ruleBlock(r DeviceRule) []insn {
	typ := int32(devTypeChar)
	if r.Type == 'b' {
		typ = devTypeBlock
	}
	block := []insn{{Op: opJneImm, Dst: r2, Imm: typ}}
	if r.Major >= 0 {
		block = append(block, insn{Op: opJneImm, Dst: r4, Imm: int32(r.Major)})
	}
	if r.Minor >= 0 {
		block = append(block, insn{Op: opJneImm, Dst: r5, Imm: int32(r.Minor)})
	}
	if mask := accessMask(r.Access); mask != accessMknod|accessRead|accessWrite {
		// Allowed only if the request has no bit outside the mask.
		block = append(block,
			insn{Op: opMovReg, Dst: r1, Src: r3},
			insn{Op: opAndImm, Dst: r1, Imm: mask},
			insn{Op: opJneReg, Dst: r1, Src: r3})
	}
	block = append(block, insn{Op: opMovImm, Dst: r0, Imm: 1}, insn{Op: opExit})
	for i := range block {
		if block[i].Op == opJneImm || block[i].Op == opJneReg {
			block[i].Off = int16(len(block) - i - 1)
		}
	}
	return block
}

func accessMask(access string) int32 {
	var mask int32
	for _, c := range access {
		switch c {
		case 'm':
			mask |= accessMknod
		case 'r':
			mask |= accessRead
		case 'w':
			mask |= accessWrite
		}
	}
	return mask
}

func encodeProgram(prog []insn) []byte {
	out := make([]byte, 8*len(prog))
	for i, in := range prog {
		in.encode(out[8*i:])
	}
	return out
}

// bpf(2) commands and attributes lodge uses (linux/bpf.h).
const (
	bpfProgLoad      = 5
	bpfProgAttach    = 8
	bpfProgDetach    = 9
	bpfProgGetFdByID = 13
	bpfProgQuery     = 16

	bpfProgTypeCgroupDevice = 15
	bpfCgroupDevice         = 6 // attach type BPF_CGROUP_DEVICE
	bpfFAllowMulti          = 2
)

// progLoadAttr is the BPF_PROG_LOAD part of union bpf_attr, up to
// expected_attach_type. Its pointers (__aligned_u64 in the kernel: lodge
// builds for 64-bit hosts) are unsafe.Pointer, not uintptr, so that the Go
// runtime keeps what they point to alive and adjusts them if a goroutine
// stack moves before the system call.
type progLoadAttr struct {
	progType           uint32
	insnCnt            uint32
	insns              unsafe.Pointer
	license            unsafe.Pointer
	logLevel           uint32
	logSize            uint32
	logBuf             unsafe.Pointer
	kernVersion        uint32
	progFlags          uint32
	progName           [16]byte
	progIfindex        uint32
	expectedAttachType uint32
}

// attachAttr serves BPF_PROG_ATTACH and BPF_PROG_DETACH.
type attachAttr struct {
	targetFd     uint32
	attachBpfFd  uint32
	attachType   uint32
	attachFlags  uint32
	replaceBpfFd uint32
}

type queryAttr struct {
	targetFd    uint32
	attachType  uint32
	queryFlags  uint32
	attachFlags uint32
	progIDs     unsafe.Pointer
	progCnt     uint32
	_           uint32
}

type getFdByIDAttr struct {
	id        uint32
	nextID    uint32
	openFlags uint32
}

func bpf(cmd int, attr unsafe.Pointer, size uintptr) (int, error) {
	r, _, errno := unix.Syscall(unix.SYS_BPF, uintptr(cmd), uintptr(attr), size)
	if errno != 0 {
		return int(r), errno
	}
	return int(r), nil
}

// deviceProgramName is what `bpftool cgroup show` lists for the program.
const deviceProgramName = "lodge_devices"

// loadDeviceProgram loads the program for rules and returns its descriptor.
// The verifier's log costs time, so it is asked for only to explain a failure.
func loadDeviceProgram(rules []DeviceRule) (int, error) {
	code := encodeProgram(deviceProgram(rules))
	fd, err := loadProgramRetrying(code, nil)
	if err == nil {
		return fd, nil
	}
	logBuf := make([]byte, 64<<10)
	fd, logErr := loadProgramRetrying(code, logBuf)
	if logErr != nil {
		return -1, fmt.Errorf("load the device program: %w (verifier: %s)", logErr, cString(logBuf))
	}
	return fd, nil // the first failure was transient after all
}

// loadProgramRetrying is loadProgram, tried again when the kernel answers
// EAGAIN: the verifier gives up with EAGAIN when a signal is pending, and a
// Go program is signalled all the time (the runtime preempts goroutines
// with SIGURG). Seen as a failed start in a benchmark starting 40
// containers.
func loadProgramRetrying(code, logBuf []byte) (int, error) {
	for try := 0; ; try++ {
		fd, err := loadProgram(code, logBuf)
		if !errors.Is(err, unix.EAGAIN) || try == 10 {
			return fd, err
		}
	}
}

// loadProgram is BPF_PROG_LOAD of a cgroup device program, with the
// verifier's log in logBuf if it is not nil.
func loadProgram(code, logBuf []byte) (int, error) {
	license := []byte("GPL\x00")
	attr := progLoadAttr{
		progType:           bpfProgTypeCgroupDevice,
		insnCnt:            uint32(len(code) / 8),
		insns:              unsafe.Pointer(&code[0]),
		license:            unsafe.Pointer(&license[0]),
		expectedAttachType: bpfCgroupDevice,
	}
	if logBuf != nil {
		attr.logLevel, attr.logSize = 1, uint32(len(logBuf))
		attr.logBuf = unsafe.Pointer(&logBuf[0])
	}
	copy(attr.progName[:], deviceProgramName)
	return bpf(bpfProgLoad, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
}

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// attachDeviceProgram replaces the device programs attached to the cgroup2
// directory dir (left by an earlier container of the same name) with one
// for rules, attached with BPF_F_ALLOW_MULTI. The attachment holds the
// program; it goes away with the cgroup.
func attachDeviceProgram(dir string, rules []DeviceRule) error {
	cg, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open cgroup %s: %w", dir, err)
	}
	defer unix.Close(cg)
	if err := detachDevicePrograms(cg); err != nil {
		return fmt.Errorf("detach old device programs from %s: %w", dir, err)
	}
	prog, err := loadDeviceProgram(rules)
	if err != nil {
		return err
	}
	defer unix.Close(prog)
	attr := attachAttr{targetFd: uint32(cg), attachBpfFd: uint32(prog), attachType: bpfCgroupDevice, attachFlags: bpfFAllowMulti}
	if _, err := bpf(bpfProgAttach, unsafe.Pointer(&attr), unsafe.Sizeof(attr)); err != nil {
		return fmt.Errorf("attach the device program to %s: %w", dir, err)
	}
	return nil
}

// devicePrograms returns the ids of the device programs attached to the
// cgroup open at cg itself (not those inherited from its ancestors).
func devicePrograms(cg int) ([]uint32, error) {
	ids := make([]uint32, 64) // BPF_CGROUP_MAX_PROGS
	attr := queryAttr{targetFd: uint32(cg), attachType: bpfCgroupDevice, progIDs: unsafe.Pointer(&ids[0]), progCnt: uint32(len(ids))}
	if _, err := bpf(bpfProgQuery, unsafe.Pointer(&attr), unsafe.Sizeof(attr)); err != nil {
		return nil, err
	}
	return ids[:attr.progCnt], nil
}

// DevicePrograms returns the ids of the device programs attached to the
// group's cgroup2 directory: one, lodge's, once the group is created (none
// on hosts without cgroup2).
func (g *Group) DevicePrograms() ([]uint32, error) {
	d, ok := g.unified()
	if !ok {
		return nil, nil
	}
	cg, err := unix.Open(d.path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(cg)
	return devicePrograms(cg)
}

func detachDevicePrograms(cg int) error {
	ids, err := devicePrograms(cg)
	if err != nil {
		return err
	}
	for _, id := range ids {
		get := getFdByIDAttr{id: id}
		prog, err := bpf(bpfProgGetFdByID, unsafe.Pointer(&get), unsafe.Sizeof(get))
		if errors.Is(err, unix.ENOENT) {
			continue // gone meanwhile
		}
		if err != nil {
			return fmt.Errorf("program %d: %w", id, err)
		}
		attr := attachAttr{targetFd: uint32(cg), attachBpfFd: uint32(prog), attachType: bpfCgroupDevice}
		_, err = bpf(bpfProgDetach, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
		unix.Close(prog)
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("program %d: %w", id, err)
		}
	}
	return nil
}
