package rootfs

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestMkdirInTree: mount points are created below the tree without following
// any symlink, and a symlink on the way is refused with the path named.
func TestMkdirInTree(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	os.Mkdir(filepath.Join(root, "sys"), 0o755)
	os.Symlink(outside, filepath.Join(root, "proc"))
	os.Symlink("sys", filepath.Join(root, "run"))
	rootFD, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(rootFD)

	fd, err := mkdirInTree(rootFD, "dev/pts")
	if err != nil {
		t.Fatalf("create dev/pts: %v", err)
	}
	unix.Close(fd)
	if fi, err := os.Lstat(filepath.Join(root, "dev/pts")); err != nil || !fi.IsDir() {
		t.Fatalf("dev/pts not created: %v", err)
	}
	for _, name := range []string{"proc", "proc/x", "run", "/run/x"} {
		fd, err := mkdirInTree(rootFD, name)
		if err == nil {
			unix.Close(fd)
			t.Errorf("mkdirInTree(%s) followed a symlink", name)
			continue
		}
		top := "/" + strings.Split(strings.TrimPrefix(name, "/"), "/")[0]
		if !strings.Contains(err.Error(), top+" in the root filesystem is, or is below, a symbolic link") {
			t.Errorf("mkdirInTree(%s): %v", name, err)
		}
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("created outside the tree: %v", entries)
	}
	// ".." at the tree's root stays there.
	os.Mkdir(filepath.Join(root, "etc"), 0o755)
	fd, err = openInTree(rootFD, "../../../../etc", true)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if got, _ := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd)); got != filepath.Join(root, "etc") {
		t.Errorf("../../../../etc below the tree opened %s", got)
	}
}
