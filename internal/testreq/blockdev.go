package testreq

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// HostBlockDevice returns a block device host root can open: the disk
// holding / if the machine allows, else the first block device that opens.
// It is what a container must never read, shared by the device-rule tests
// of the cgroup package and the escape suite. Without one it skips for
// feature "blockdev".
func HostBlockDevice(t testing.TB) (major, minor uint32) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat("/", &st); err != nil {
		t.Fatal(err)
	}
	candidates := [][2]uint32{{unix.Major(st.Dev), unix.Minor(st.Dev)}}
	devs, _ := filepath.Glob("/sys/class/block/*/dev")
	for _, dev := range devs {
		var maj, mnr uint32
		if data, err := os.ReadFile(dev); err == nil {
			if n, _ := fmt.Sscanf(string(data), "%d:%d", &maj, &mnr); n == 2 {
				candidates = append(candidates, [2]uint32{maj, mnr})
			}
		}
	}
	node := filepath.Join(t.TempDir(), "probe")
	for _, c := range candidates {
		os.Remove(node)
		if unix.Mknod(node, unix.S_IFBLK|0o600, int(unix.Mkdev(c[0], c[1]))) != nil {
			continue
		}
		if f, err := os.Open(node); err == nil {
			f.Close()
			return c[0], c[1]
		}
	}
	Skip(t, "blockdev", "host root can open no block device here, so no test can show one refused")
	return 0, 0
}
