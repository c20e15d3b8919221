package rawfile

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestReadSizes(t *testing.T) {
	dir := t.TempDir()
	for _, size := range []int{0, 1, chunk - 1, chunk, chunk + 1, 3*chunk + 7} {
		want := bytes.Repeat([]byte("x"), size)
		path := filepath.Join(dir, "f")
		if err := os.WriteFile(path, want, 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := Read(path)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("size %d: got %d bytes, %v", size, len(got), err)
		}
	}
}

func TestReadProcAndMissing(t *testing.T) {
	// /proc files report size 0: only reading to the end gives their text.
	got, err := Read("/proc/self/stat")
	if err != nil || len(got) == 0 {
		t.Fatalf("/proc/self/stat: %q, %v", got, err)
	}
	_, err = Read(filepath.Join(t.TempDir(), "missing"))
	var pe *fs.PathError
	if !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &pe) {
		t.Fatalf("missing file: %v, want a *fs.PathError that is fs.ErrNotExist", err)
	}
}

func TestLocked(t *testing.T) {
	dir := t.TempDir()
	if Locked(dir) {
		t.Fatal("an unlocked directory reads as locked")
	}
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if !Locked(dir) {
		t.Fatal("a directory locked exclusively reads as unlocked")
	}
	if Locked(filepath.Join(dir, "missing")) {
		t.Fatal("a missing path reads as locked")
	}
}
