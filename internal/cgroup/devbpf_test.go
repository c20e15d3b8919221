package cgroup

import (
	"bytes"
	"encoding/binary"
	"testing"
	"unsafe"

	"github.com/cilium/ebpf/asm"
)

// asmProgram assembles deviceProgram's program with cilium/ebpf's asm
// package, the reference encoder.
func asmProgram(rules []DeviceRule) asm.Instructions {
	prog := asm.Instructions{
		asm.LoadMem(asm.R2, asm.R1, 0, asm.Word),
		asm.And.Imm(asm.R2, 0xffff),
		asm.LoadMem(asm.R3, asm.R1, 0, asm.Word),
		asm.RSh.Imm(asm.R3, 16),
		asm.LoadMem(asm.R4, asm.R1, 4, asm.Word),
		asm.LoadMem(asm.R5, asm.R1, 8, asm.Word),
	}
	for _, r := range rules {
		typ := int32(devTypeChar)
		if r.Type == 'b' {
			typ = devTypeBlock
		}
		block := asm.Instructions{asm.JNE.Imm(asm.R2, typ, "")}
		if r.Major >= 0 {
			block = append(block, asm.JNE.Imm(asm.R4, int32(r.Major), ""))
		}
		if r.Minor >= 0 {
			block = append(block, asm.JNE.Imm(asm.R5, int32(r.Minor), ""))
		}
		if m := accessMask(r.Access); m != 7 {
			block = append(block, asm.Mov.Reg(asm.R1, asm.R3), asm.And.Imm(asm.R1, m), asm.JNE.Reg(asm.R1, asm.R3, ""))
		}
		block = append(block, asm.Mov.Imm(asm.R0, 1), asm.Return())
		for i := range block {
			if block[i].OpCode.JumpOp() == asm.JNE {
				block[i].Offset = int16(len(block) - i - 1)
			}
		}
		prog = append(prog, block...)
	}
	return append(prog, asm.Mov.Imm(asm.R0, 0), asm.Return())
}

// TestDeviceProgramMatchesAsm: lodge's small encoder writes the same bytes
// as cilium/ebpf for the allow-list and for rules with partial access.
func TestDeviceProgramMatchesAsm(t *testing.T) {
	for _, rules := range [][]DeviceRule{
		AllowedDevices,
		{{'b', 8, -1, "r"}, {'c', -1, -1, "m"}, {'c', 4, 2, "rw"}},
	} {
		var want bytes.Buffer
		if err := asmProgram(rules).Marshal(&want, binary.LittleEndian); err != nil {
			t.Fatal(err)
		}
		if got := encodeProgram(deviceProgram(rules)); !bytes.Equal(got, want.Bytes()) {
			t.Errorf("rules %v:\n lodge %x\n asm   %x", rules, got, want.Bytes())
		}
	}
}

// TestBPFAttrLayout: the attribute structs match union bpf_attr's layout
// (linux/bpf.h), pointers as __aligned_u64.
func TestBPFAttrLayout(t *testing.T) {
	var load progLoadAttr
	var query queryAttr
	for what, got := range map[string][2]uintptr{
		"prog_load size":            {unsafe.Sizeof(load), 72},
		"prog_load insns":           {unsafe.Offsetof(load.insns), 8},
		"prog_load log_buf":         {unsafe.Offsetof(load.logBuf), 32},
		"prog_load prog_name":       {unsafe.Offsetof(load.progName), 48},
		"prog_load expected_attach": {unsafe.Offsetof(load.expectedAttachType), 68},
		"attach size":               {unsafe.Sizeof(attachAttr{}), 20},
		"query prog_ids":            {unsafe.Offsetof(query.progIDs), 16},
		"query prog_cnt":            {unsafe.Offsetof(query.progCnt), 24},
	} {
		if got[0] != got[1] {
			t.Errorf("%s: %d, want %d", what, got[0], got[1])
		}
	}
}
