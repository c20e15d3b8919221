package storage

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"lodge/internal/testreq"

	"golang.org/x/sys/unix"
)

func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		testreq.Skip(t, "root", "copies keep owners, device nodes and security.capability, which only root can make")
	}
}

// capNetRaw is a version 2 security.capability value granting cap_net_raw
// (13) permitted and effective, as `setcap cap_net_raw+ep` writes it.
func capNetRaw() []byte {
	b := make([]byte, 20)
	binary.LittleEndian.PutUint32(b[0:], 0x02000001) // VFS_CAP_REVISION_2 | effective
	binary.LittleEndian.PutUint32(b[4:], 1<<13)      // permitted, low word
	return b
}

// aclUser1000 is a system.posix_acl_access value: u::rw-, u:1000:r--,
// g::r--, m::r--, o::---, matching mode 0640.
func aclUser1000() []byte {
	var b bytes.Buffer
	le := func(v any) { binary.Write(&b, binary.LittleEndian, v) }
	le(uint32(2))
	for _, e := range []struct {
		tag, perm uint16
		id        uint32
	}{{0x01, 6, ^uint32(0)}, {0x02, 4, 1000}, {0x04, 4, ^uint32(0)}, {0x10, 4, ^uint32(0)}, {0x20, 0, ^uint32(0)}} {
		le(e.tag)
		le(e.perm)
		le(e.id)
	}
	return b.Bytes()
}

// makeTree fills dir with every kind of entry a root filesystem holds and
// every property `cp -a` keeps: owners, modes with setuid/setgid/sticky,
// times, xattrs (user, security.capability, ACL), hard links, symlinks,
// device nodes, a fifo, a socket node, sparse and empty files.
func makeTree(t testing.TB, dir string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	p := func(rel string) string { return filepath.Join(dir, rel) }
	must(os.MkdirAll(p("etc/deep/er/still"), 0o755))
	must(os.Mkdir(p("tmp"), 0o755))
	must(os.Mkdir(p("home"), 0o755))
	must(os.WriteFile(p("etc/hostname"), []byte("golden\n"), 0o644))
	must(os.WriteFile(p("etc/deep/er/still/file"), bytes.Repeat([]byte("x"), 70000), 0o600))
	must(os.WriteFile(p("empty"), nil, 0o644))
	must(os.WriteFile(p("suid"), []byte("#!/bin/sh\n"), 0o755))
	must(os.WriteFile(p("ping"), []byte("ELF"), 0o755))
	must(os.WriteFile(p("acl"), []byte("secret"), 0o640))
	must(os.WriteFile(p("home/owned"), []byte("user file"), 0o600))
	must(os.WriteFile(p("hl1"), []byte("linked three times"), 0o644))
	must(os.Link(p("hl1"), p("etc/hl2")))
	must(os.Link(p("hl1"), p("home/hl3")))
	must(os.Symlink("etc/hostname", p("sl")))
	must(os.Symlink("/does/not/exist", p("dangling")))
	must(unix.Mknod(p("null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(unix.Mknod(p("loop9"), unix.S_IFBLK|0o660, int(unix.Mkdev(7, 9))))
	must(unix.Mkfifo(p("fifo"), 0o620))
	must(unix.Mknod(p("sock"), unix.S_IFSOCK|0o755, 0))
	// Sparse: 16 MiB with 4 KiB of data at 8 MiB and a trailing hole.
	f, err := os.Create(p("sparse"))
	must(err)
	_, err = f.WriteAt(bytes.Repeat([]byte{0xab}, 4096), 8<<20)
	must(err)
	must(f.Truncate(16 << 20))
	must(f.Close())

	must(os.Lchown(p("home/owned"), 1000, 1000))
	must(os.Lchown(p("home"), 1000, 1001))
	must(os.Lchown(p("sl"), 7, 8))
	must(os.Lchown(p("loop9"), 0, 6))
	must(os.Lchown(p("suid"), 0, 50))
	must(unix.Setxattr(p("ping"), "security.capability", capNetRaw(), 0))
	must(unix.Setxattr(p("acl"), "system.posix_acl_access", aclUser1000(), 0))
	must(unix.Setxattr(p("etc/hostname"), "user.lodge", []byte("value"), 0))
	must(unix.Setxattr(p("home"), "user.dir", []byte("on a directory"), 0))
	must(unix.Setxattr(p("null"), "trusted.dev", []byte("on a device"), 0))
	must(unix.Chmod(p("suid"), 0o4755))
	must(unix.Chmod(p("tmp"), 0o1777))
	must(unix.Chmod(p("home"), 0o2750))
	must(unix.Chmod(p("sock"), 0o755))
	// Distinct times everywhere, deepest first so parents keep theirs.
	var paths []string
	filepath.Walk(dir, func(path string, _ os.FileInfo, err error) error {
		paths = append(paths, path)
		return err
	})
	sort.Sort(sort.Reverse(sort.StringSlice(paths)))
	for i, path := range paths {
		ts := []unix.Timespec{{Sec: 1_000_000_000 + int64(i), Nsec: 123}, {Sec: 1_100_000_000 + int64(i)*7, Nsec: 456789}}
		must(unix.UtimesNanoAt(unix.AT_FDCWD, path, ts, unix.AT_SYMLINK_NOFOLLOW))
	}
}

// node is what compareTrees compares of one path.
type node struct {
	mode, uid, gid uint32
	rdev           uint64
	size           int64
	mtime          unix.Timespec
	nlink          uint64
	target         string
	xattrs         map[string]string
	sum            [32]byte
	blocks         int64
	ino            uint64
}

func readTree(t testing.TB, dir string) map[string]node {
	t.Helper()
	out := map[string]node{}
	err := filepath.Walk(dir, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			return err
		}
		n := node{mode: st.Mode, uid: st.Uid, gid: st.Gid, size: st.Size, mtime: st.Mtim,
			nlink: uint64(st.Nlink), blocks: st.Blocks, ino: st.Ino, xattrs: map[string]string{}}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFCHR, unix.S_IFBLK:
			n.rdev = st.Rdev
		case unix.S_IFLNK:
			n.target, _ = os.Readlink(path)
		case unix.S_IFREG:
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			h := sha256.New()
			io.Copy(h, f)
			f.Close()
			copy(n.sum[:], h.Sum(nil))
		case unix.S_IFDIR:
			// Directory sizes and link counts are the filesystem's
			// business (btrfs counts 1 link for every directory).
			n.size, n.nlink = 0, 0
		}
		names, err := listXattrs(func(b []byte) (int, error) { return unix.Llistxattr(path, b) })
		if err != nil {
			return err
		}
		for _, name := range names {
			v, err := getXattr(func(n string, b []byte) (int, error) { return unix.Lgetxattr(path, n, b) }, name)
			if err != nil {
				return err
			}
			n.xattrs[name] = string(v)
		}
		out[rel] = n
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// compareTrees fails t where dst differs from src in anything `cp -a`
// keeps, including which paths share an inode.
func compareTrees(t testing.TB, src, dst string) {
	t.Helper()
	a, b := readTree(t, src), readTree(t, dst)
	inodes := map[uint64]uint64{}
	for rel, x := range a {
		y, ok := b[rel]
		if !ok {
			t.Errorf("%s: missing from the copy", rel)
			continue
		}
		if x.mode != y.mode || x.uid != y.uid || x.gid != y.gid || x.rdev != y.rdev || x.size != y.size ||
			x.mtime != y.mtime || x.nlink != y.nlink || x.target != y.target || x.sum != y.sum {
			t.Errorf("%s differs:\n source %+v\n copy   %+v", rel, x, y)
		}
		if len(x.xattrs) != len(y.xattrs) {
			t.Errorf("%s: xattrs %q, copy has %q", rel, x.xattrs, y.xattrs)
		}
		for k, v := range x.xattrs {
			if y.xattrs[k] != v {
				t.Errorf("%s: xattr %s is %q, copy has %q", rel, k, v, y.xattrs[k])
			}
		}
		if x.mode&unix.S_IFMT == unix.S_IFREG && y.blocks > x.blocks+8 {
			t.Errorf("%s: %d blocks, the copy takes %d (holes filled?)", rel, x.blocks, y.blocks)
		}
		if x.mode&unix.S_IFMT != unix.S_IFDIR && x.nlink > 1 {
			if prev, ok := inodes[x.ino]; ok && prev != y.ino {
				t.Errorf("%s: hard link broken in the copy", rel)
			}
			inodes[x.ino] = y.ino
		}
	}
	for rel := range b {
		if _, ok := a[rel]; !ok {
			t.Errorf("%s: in the copy only", rel)
		}
	}
}
