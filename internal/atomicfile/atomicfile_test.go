package atomicfile

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
)

func TestWriteReplaces(t *testing.T) {
	for name, write := range map[string]func(string, []byte, os.FileMode) error{"Write": Write, "WriteRuntime": WriteRuntime} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "state.json")
			old := syscall.Umask(0o077)
			defer syscall.Umask(old)
			for _, text := range []string{"first", "second, longer"} {
				if err := write(path, []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
				got, err := os.ReadFile(path)
				if err != nil || string(got) != text {
					t.Fatalf("read back %q, %v; want %q", got, err, text)
				}
			}
			fi, err := os.Stat(path)
			if err != nil || fi.Mode().Perm() != 0o644 {
				t.Errorf("mode %v (%v), want 0644 whatever the umask", fi.Mode(), err)
			}
			onlyFile(t, dir, "state.json")
		})
	}
}

// TestWriteReplacesSymlink: a symlink at the path is replaced, its target
// left alone (a planted link cannot redirect the write).
func TestWriteReplacesSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	os.WriteFile(target, []byte("keep"), 0o600)
	path := filepath.Join(dir, "link")
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	if err := Write(path, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(target); string(got) != "keep" {
		t.Errorf("the symlink's target was written: %q", got)
	}
	if fi, err := os.Lstat(path); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("path is not a regular file now: %v, %v", fi.Mode(), err)
	}
}

// TestWriteFailureLeavesNothing: a failed write (the target is a
// directory, so the rename fails) reports the path and leaves no
// temporary file behind.
func TestWriteFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "taken")
	os.Mkdir(path, 0o755)
	os.WriteFile(filepath.Join(path, "x"), nil, 0o600) // a non-empty directory cannot be renamed over
	err := Write(path, []byte("data"), 0o600)
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte(path)) {
		t.Fatalf("error %v, want one naming %s", err, path)
	}
	onlyFile(t, dir, "taken")
	if err := Write(filepath.Join(dir, "missing", "f"), nil, 0o600); err == nil {
		t.Error("a write into a missing directory succeeded")
	}
}

// TestReadersSeeOldOrNew: readers racing with writers only ever see one of
// the complete contents (os.WriteFile, which truncates and writes in
// place, fails this).
func TestReadersSeeOldOrNew(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	a, b := bytes.Repeat([]byte("a"), 256<<10), bytes.Repeat([]byte("b"), 128<<10)
	if err := WriteRuntime(path, a, 0o600); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			data := a
			if i%2 == 1 {
				data = b
			}
			if err := WriteRuntime(path, data, 0o600); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for range 2000 {
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, a) && !bytes.Equal(got, b) {
			t.Fatalf("a reader saw a mix: %d bytes", len(got))
		}
	}
	close(stop)
	wg.Wait()
}

// onlyFile checks that dir holds just name: no temporary file was left.
func onlyFile(t *testing.T, dir, name string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != name {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("%s holds %v, want only %s", dir, names, name)
	}
}
