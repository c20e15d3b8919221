package templates

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"lodge/internal/testreq"

	"golang.org/x/sys/unix"
)

// TestSanitizeTree: what debootstrap or an older lodge left on disk is
// brought under the rules, without following symlinks.
func TestSanitizeTree(t *testing.T) {
	if os.Geteuid() != 0 {
		testreq.Skip(t, "root", "needs root (mknod, chown)")
	}
	rootfs := t.TempDir()
	os.MkdirAll(filepath.Join(rootfs, "dev"), 0o755)
	os.MkdirAll(filepath.Join(rootfs, "usr/bin"), 0o755)
	must(t, unix.Mknod(filepath.Join(rootfs, "dev/mem"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 1))))
	must(t, unix.Mknod(filepath.Join(rootfs, "dev/sda"), unix.S_IFBLK|0o666, int(unix.Mkdev(8, 0))))
	for name, uid := range map[string]int{"usr/bin/passwd": 0, "usr/bin/evil": 70000} {
		path := filepath.Join(rootfs, name)
		must(t, os.WriteFile(path, []byte("x"), 0o755))
		must(t, os.Chown(path, uid, 0))
		must(t, unix.Chmod(path, 0o4755))
	}
	// A symlink owned by an id outside the range, pointing at a host file.
	host := filepath.Join(t.TempDir(), "host-file")
	must(t, os.WriteFile(host, nil, 0o644))
	must(t, os.Symlink(host, filepath.Join(rootfs, "usr/bin/link")))
	must(t, os.Lchown(filepath.Join(rootfs, "usr/bin/link"), 80000, 80000))

	changes, err := sanitizeTree(rootfs)
	if err != nil {
		t.Fatal(err)
	}
	for _, dev := range []string{"dev/mem", "dev/sda"} {
		if _, err := os.Lstat(filepath.Join(rootfs, dev)); !os.IsNotExist(err) {
			t.Errorf("%s is still there: %v", dev, err)
		}
	}
	check := func(name string, mode uint32, uid uint32) {
		var st unix.Stat_t
		must(t, unix.Lstat(filepath.Join(rootfs, name), &st))
		if st.Mode&0o7777 != mode && st.Mode&unix.S_IFMT != unix.S_IFLNK || st.Uid != uid {
			t.Errorf("%s: mode %o uid %d, want %o %d", name, st.Mode&0o7777, st.Uid, mode, uid)
		}
	}
	check("usr/bin/passwd", 0o4755, 0)
	check("usr/bin/evil", 0o755, nobodyID)
	check("usr/bin/link", 0, nobodyID)
	var st syscall.Stat_t
	syscall.Stat(host, &st)
	if st.Uid != 0 {
		t.Errorf("the host file behind a symlink was chowned to %d", st.Uid)
	}
	if got := strings.Join(changes.Lines(), "\n"); !strings.Contains(got, "removed 2 device nodes") || !strings.Contains(got, "usr/bin/evil, uid 70000") {
		t.Errorf("changes: %s", got)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
