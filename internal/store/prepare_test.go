package store

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestPrepareMakesTreesPrivate: the directories that hold root filesystems
// are root-only, including ones an older lodge made searchable by everyone.
func TestPrepareMakesTreesPrivate(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{s.TmpDir(), s.ImagesDir()} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		os.Chmod(dir, 0o755)
	}
	if err := s.Prepare(); err != nil {
		t.Fatal(err)
	}
	want := map[string]os.FileMode{s.TmpDir(): 0o700, s.ImagesDir(): 0o700, s.RunDir(): 0o711, filepath.Join(s.Root, "containers"): 0o711}
	for dir, mode := range want {
		fi, err := os.Stat(dir)
		if err != nil {
			t.Error(err)
		} else if fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", dir, fi.Mode().Perm(), mode)
		}
	}
}

// TestPrepareMakesATraversableRoot: a root lodge makes can be traversed by
// the networks' dnsmasq (its own user), whatever the umask.
func TestPrepareMakesATraversableRoot(t *testing.T) {
	old := unix.Umask(0o077)
	defer unix.Umask(old)
	s := &Store{Root: filepath.Join(t.TempDir(), "a", "lodge")}
	if err := s.Prepare(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(s.Root)
	if err != nil || fi.Mode().Perm() != 0o711 {
		t.Fatalf("a new root has mode %v (%v), want 0711", fi.Mode().Perm(), err)
	}
}
