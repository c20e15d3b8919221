package rootfs

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"lodge/internal/testreq"

	"golang.org/x/sys/unix"
)

func TestToHost(t *testing.T) {
	s := IDShift{HostID: 1_000_000, Count: 65536}
	cases := map[uint32]uint32{0: 1_000_000, 1000: 1_001_000, 65535: 1_065_535, 1_000_005: 1_000_005, 70000: 70000}
	for in, want := range cases {
		if got := s.toHost(in); got != want {
			t.Errorf("toHost(%d) = %d, want %d", in, got, want)
		}
	}
}

func TestShiftACL(t *testing.T) {
	acl := make([]byte, aclHeaderSize+3*aclEntrySize)
	binary.LittleEndian.PutUint32(acl, 2)
	entry := func(i int, tag uint16, id uint32) {
		off := aclHeaderSize + i*aclEntrySize
		binary.LittleEndian.PutUint16(acl[off:], tag)
		binary.LittleEndian.PutUint32(acl[off+4:], id)
	}
	entry(0, 0x01, 0xffffffff) // owner: no id
	entry(1, aclUser, 1000)
	entry(2, aclGroup, 50)
	if !shiftACL(acl, IDShift{HostID: 500000, Count: 65536}) {
		t.Fatal("nothing shifted")
	}
	id := func(i int) uint32 { return binary.LittleEndian.Uint32(acl[aclHeaderSize+i*aclEntrySize+4:]) }
	if id(0) != 0xffffffff || id(1) != 501000 || id(2) != 500050 {
		t.Fatalf("shifted ids = %d %d %d", id(0), id(1), id(2))
	}
}

// TestShiftKeepsModesAndResumes chowns a small tree for real (root only).
func TestShiftKeepsModesAndResumes(t *testing.T) {
	if os.Geteuid() != 0 {
		testreq.Skip(t, "root", "needs root to chown")
	}
	dir := t.TempDir()
	suid := filepath.Join(dir, "suid")
	os.WriteFile(suid, []byte("#!/bin/sh\n"), 0o755)
	os.Chmod(suid, 0o755|os.ModeSetuid)
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	os.Symlink("suid", filepath.Join(dir, "sub", "link"))
	os.Chown(filepath.Join(dir, "sub"), 1000, 1000)
	// An entry already in the host range, as after an interrupted shift.
	done := filepath.Join(dir, "done")
	os.WriteFile(done, nil, 0o644)
	os.Chown(done, 700005, 700005)

	shift := IDShift{HostID: 700000, Count: 65536}
	var reports int
	if err := Shift(dir, shift, func(done, total int) { reports++ }); err != nil {
		t.Fatal(err)
	}
	expectOwner(t, suid, 700000)
	expectOwner(t, filepath.Join(dir, "sub"), 701000)
	expectOwner(t, done, 700005)
	var st unix.Stat_t
	unix.Lstat(filepath.Join(dir, "sub", "link"), &st)
	if st.Uid != 700000 {
		t.Errorf("symlink owner %d, want 700000 (lchown, not the target)", st.Uid)
	}
	if fi, _ := os.Stat(suid); fi.Mode()&os.ModeSetuid == 0 {
		t.Errorf("setuid bit lost: %v", fi.Mode())
	}
	if reports == 0 {
		t.Error("no progress reported")
	}
	if err := Shift(dir, shift, nil); err != nil { // running again changes nothing
		t.Fatal(err)
	}
	expectOwner(t, suid, 700000)
}

func expectOwner(t *testing.T, path string, uid uint32) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Sys().(*syscall.Stat_t).Uid; got != uid {
		t.Errorf("%s owned by %d, want %d", path, got, uid)
	}
}
