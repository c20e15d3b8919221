package migrate

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"lodge/internal/testreq"
)

// describeTree is every entry of the tree at dir with its kind, owner,
// mode, size, data, link target, device, xattrs and modification time, and
// which entries share an inode.
func describeTree(t *testing.T, dir string) string {
	t.Helper()
	var lines []string
	inodes := map[uint64]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		line := fmt.Sprintf("%s %o %d:%d", rel, st.Mode, st.Uid, st.Gid)
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			line += fmt.Sprintf(" mtime=%d", st.Mtim.Nano())
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			data, _ := os.ReadFile(p)
			line += fmt.Sprintf(" %q", data)
			if first, ok := inodes[st.Ino]; ok {
				line += " link-of=" + first
			} else {
				inodes[st.Ino] = rel
			}
		case unix.S_IFLNK:
			target, _ := os.Readlink(p)
			line += " -> " + target
		case unix.S_IFCHR:
			line += fmt.Sprintf(" dev=%d", st.Rdev)
		}
		xattrs, err := readXattrs(p)
		if err != nil {
			return err
		}
		var names []string
		for k, v := range xattrs {
			names = append(names, k+"="+v)
		}
		sort.Strings(names)
		lines = append(lines, line+" "+strings.Join(names, ","))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

func TestTreeStream(t *testing.T) {
	if os.Geteuid() != 0 {
		testreq.Skip(t, "root", "makes devices and files of other owners")
	}
	ctx := context.Background()
	src, dst := t.TempDir(), t.TempDir()
	write := func(rel, data string) {
		t.Helper()
		os.MkdirAll(filepath.Dir(filepath.Join(src, rel)), 0o755)
		if err := os.WriteFile(filepath.Join(src, rel), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("etc/hostname", "h1\n")
	write("bin/prog", "binary")
	os.Chmod(filepath.Join(src, "bin/prog"), 0o4755)
	os.Lchown(filepath.Join(src, "bin/prog"), 1000, 1001)
	os.Link(filepath.Join(src, "bin/prog"), filepath.Join(src, "bin/prog2"))
	os.Symlink("../etc/hostname", filepath.Join(src, "bin/link"))
	unix.Mknod(filepath.Join(src, "whiteout"), unix.S_IFCHR|0o600, 0)
	unix.Mkfifo(filepath.Join(src, "fifo"), 0o640)
	os.Mkdir(filepath.Join(src, "opaque"), 0o711)
	if err := unix.Lsetxattr(filepath.Join(src, "opaque"), "user.overlay.opaque", []byte("y"), 0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lsetxattr(src, "user.overlay.impure", []byte("y"), 0); err != nil { // the top too (an overlay layer's)
		t.Fatal(err)
	}
	write("gone/file", "x")
	write("replaced", "a file, then a directory")

	var buf bytes.Buffer
	state, sent, err := SendTree(ctx, &buf, src, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ReceiveTree(ctx, &buf, dst); err != nil {
		t.Fatal(err)
	}
	if got, want := describeTree(t, dst), describeTree(t, src); got != want {
		t.Fatalf("first pass: received tree\n%s\nwant\n%s", got, want)
	}

	// The delta: changed, added, deleted and replaced entries only.
	write("etc/hostname", "h2\n")
	write("etc/new", "new")
	os.RemoveAll(filepath.Join(src, "gone"))
	os.Remove(filepath.Join(src, "replaced"))
	write("replaced/inside", "now a directory")
	buf.Reset()
	_, delta, err := SendTree(ctx, &buf, src, state, nil)
	if err != nil {
		t.Fatal(err)
	}
	if delta.Deleted != 2 || delta.Entries >= sent.Entries+2 {
		t.Errorf("delta sent %+v (first pass %+v): want the 2 deletions and only the entries changed", delta, sent)
	}
	if _, err := ReceiveTree(ctx, &buf, dst); err != nil {
		t.Fatal(err)
	}
	if got, want := describeTree(t, dst), describeTree(t, src); got != want {
		t.Fatalf("delta: received tree\n%s\nwant\n%s", got, want)
	}
}
