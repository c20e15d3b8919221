package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.toml")
	for _, tt := range []struct {
		data string
		perm os.FileMode
	}{
		{"first\n", 0o600},
		{"second, replacing the first\n", 0o644},
	} {
		if err := WriteFileAtomic(path, []byte(tt.data), tt.perm); err != nil {
			t.Fatalf("WriteFileAtomic: %v", err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != tt.data {
			t.Errorf("content = %q, %v; want %q", got, err, tt.data)
		}
		info, err := os.Stat(path)
		if err != nil || info.Mode().Perm() != tt.perm {
			t.Errorf("mode = %v, %v; want %v", info.Mode().Perm(), err, tt.perm)
		}
		assertOnlyFile(t, dir, "state.toml")
	}
}

func TestWriteFileAtomicIgnoresUmask(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "f")
	if err := WriteFileAtomic(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o644 {
		t.Errorf("mode = %v, %v; want 0644", info.Mode().Perm(), err)
	}
}

func TestWriteFileAtomicErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "no", "such", "dir", "f")
	if err := WriteFileAtomic(missing, []byte("x"), 0o644); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("WriteFileAtomic into a missing directory = %v; want an error naming the path", err)
	}
	// Renaming over a directory fails after the temporary file was written:
	// it must be cleaned up.
	target := filepath.Join(dir, "target")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(target, []byte("x"), 0o644); err == nil {
		t.Error("WriteFileAtomic over a directory succeeded")
	}
	assertOnlyFile(t, dir, "target")
}

func assertOnlyFile(t *testing.T, dir, name string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != name {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %q; want only %q (no temporary files left)", names, name)
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	c := Default()
	c.Source = Source{
		Template: "debian",
		Options:  map[string]string{"release": "bookworm"},
		Created:  time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
	}
	c.Limits = Limits{Memory: 3 << 29, Swap: 1e9, CPU: 1.5, Cpuset: "0,2", Pids: 100}
	c.Init = Init{Command: []string{"/bin/sh", "-c", "exec init"}, StopSignal: "SIGPWR", StopTimeout: Duration(time.Minute)}
	c.Rootfs.Shift = ShiftChown
	if err := c.Save(path); err != nil {
		t.Fatal(err)
	}
	back, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, c) {
		t.Errorf("Load(Save(c)) = %+v\nwant %+v", back, c)
	}
	text, _ := os.ReadFile(path)
	for _, want := range []string{containerFileHeader, "version = 1\n", `memory = "1.5GiB"`, `swap = "1GB"`, `stop_timeout = "1m0s"`} {
		if !strings.Contains(string(text), want) {
			t.Errorf("saved file lacks %q:\n%s", want, text)
		}
	}
}

func TestSaveDefaultIsMinimal(t *testing.T) {
	text, err := Default().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := containerFileHeader + `version = 1

[limits]
pids = 2048

[init]
command = ["/sbin/init"]
stop_timeout = "30s"

[rootfs]
shift = "auto"

[lxcfs]
enabled = true
`
	if string(text) != want {
		t.Errorf("Marshal(Default()) =\n%s\nwant\n%s", text, want)
	}
}

func TestSaveRefusesInvalid(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	c := Default()
	c.Limits.CPU = -1
	err := c.Save(path)
	if err == nil || !strings.Contains(err.Error(), "limits.cpu: -1 is negative") {
		t.Errorf("Save(invalid) = %v", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("Save(invalid) wrote a file: %v", err)
	}
}
