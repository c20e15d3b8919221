package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

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
