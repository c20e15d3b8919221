package rootfs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// IDShift moves ownership between the natural ids a root filesystem keeps on
// disk (0..Count-1) and the container's host id range (HostID..HostID+Count-1).
type IDShift struct {
	HostID uint32
	Count  uint32
}

// toHost maps a natural id into the host range. Ids already in the host range
// are left alone, which is what makes an interrupted shift resumable; ids in
// neither range (rare, foreign files) are left alone too.
func (s IDShift) toHost(id uint32) uint32 {
	if id < s.Count {
		return id + s.HostID
	}
	return id
}

// ShiftProgress is told how many entries were shifted out of how many.
type ShiftProgress func(done, total int)

// Shift chowns every file under dir from natural ids to the host range: the
// fallback for filesystems that cannot be idmapped. It keeps setuid/setgid bits,
// file capabilities and ACL entries that a plain chown would drop or leave
// unshifted. Running it again after an interruption finishes the job.
func Shift(dir string, s IDShift, progress ShiftProgress) error {
	total, err := countEntries(dir)
	if err != nil {
		return fmt.Errorf("shift %s: %w", dir, err)
	}
	done := 0
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := shiftEntry(path, s); err != nil {
			return fmt.Errorf("shift %s: %w", path, err)
		}
		done++
		if progress != nil && (done%2000 == 0 || done == total) {
			progress(done, total)
		}
		return nil
	})
	if progress != nil && done != total {
		progress(done, done)
	}
	return err
}

func countEntries(dir string) (int, error) {
	n := 0
	err := filepath.WalkDir(dir, func(_ string, _ fs.DirEntry, err error) error {
		n++
		return err
	})
	return n, err
}

func shiftEntry(path string, s IDShift) error {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return err
	}
	uid, gid := s.toHost(st.Uid), s.toHost(st.Gid)
	if uid == st.Uid && gid == st.Gid {
		return nil
	}
	isLink := st.Mode&unix.S_IFMT == unix.S_IFLNK
	var caps []byte
	if !isLink {
		caps = getXattr(path, "security.capability")
	}
	if err := unix.Lchown(path, int(uid), int(gid)); err != nil {
		return err
	}
	if isLink {
		return nil
	}
	// chown clears setuid/setgid and file capabilities: put them back.
	if st.Mode&(unix.S_ISUID|unix.S_ISGID) != 0 {
		if err := unix.Chmod(path, st.Mode&07777); err != nil {
			return err
		}
	}
	if caps != nil {
		if err := unix.Lsetxattr(path, "security.capability", caps, 0); err != nil {
			return err
		}
	}
	return shiftACLs(path, s)
}

func getXattr(path, name string) []byte {
	buf := make([]byte, 256)
	n, err := unix.Lgetxattr(path, name, buf)
	if err != nil {
		return nil
	}
	return buf[:n]
}

// POSIX ACL xattr layout: a 4-byte version header, then 8-byte entries of
// tag (u16), permissions (u16) and id (u32), little endian.
const (
	aclHeaderSize = 4
	aclEntrySize  = 8
	aclUser       = 0x02
	aclGroup      = 0x08
)

func shiftACLs(path string, s IDShift) error {
	for _, name := range []string{"system.posix_acl_access", "system.posix_acl_default"} {
		acl := getXattr(path, name)
		if len(acl) < aclHeaderSize {
			continue
		}
		if !shiftACL(acl, s) {
			continue
		}
		if err := unix.Lsetxattr(path, name, acl, 0); err != nil && !errors.Is(err, unix.EOPNOTSUPP) {
			return fmt.Errorf("rewrite %s: %w", name, err)
		}
	}
	return nil
}

// shiftACL rewrites the named-user and named-group entries of acl in place and
// reports whether anything changed.
func shiftACL(acl []byte, s IDShift) bool {
	changed := false
	for off := aclHeaderSize; off+aclEntrySize <= len(acl); off += aclEntrySize {
		tag := binary.LittleEndian.Uint16(acl[off:])
		if tag != aclUser && tag != aclGroup {
			continue
		}
		id := binary.LittleEndian.Uint32(acl[off+4:])
		if shifted := s.toHost(id); shifted != id {
			binary.LittleEndian.PutUint32(acl[off+4:], shifted)
			changed = true
		}
	}
	return changed
}
