package tests

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"lodge/storage"
)

// loopsUnder lists the loop devices bound to a file below dir.
func loopsUnder(dir string) []string {
	files, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	var found []string
	for _, f := range files {
		if data, err := os.ReadFile(f); err == nil && strings.HasPrefix(string(data), dir+"/") {
			found = append(found, f+": "+strings.TrimSpace(string(data)))
		}
	}
	return found
}

// dfRootKiB is the size and use of / inside a container (busybox df -k).
func dfRootKiB(t *testing.T, e *env, name string) (size, used int64) {
	t.Helper()
	out := e.must("exec", name, "--", "df", "-k", "/")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	f := strings.Fields(lines[len(lines)-1])
	if len(f) < 6 {
		t.Fatalf("df -k / inside %s: %q", name, out)
	}
	size, err1 := strconv.ParseInt(f[1], 10, 64)
	used, err2 := strconv.ParseInt(f[2], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("df -k / inside %s: %q", name, out)
	}
	return size, used
}

// TestOverlayDiskLimit: limits.disk on the default backend of this host
// (overlay on ext4, no project quotas): set on a stopped container, writing
// past it inside fails with "No space left on device", df / inside shows
// the limit and the use, another container and the host still write; a
// running container's limit is not moved (stop it first); stop and start
// keep data and limit; a copy keeps the limit; delete leaves no loop
// device, mount or file.
func TestOverlayDiskLimit(t *testing.T) {
	e := newEnv(t)
	e.createBusybox("dk1")
	requireOverlayDefault(t, e, "dk1")
	e.createBusybox("dk2")
	e.createBusybox("dk4", "limits.disk=64MiB") // create -c makes it with its image
	if _, err := os.Stat(filepath.Join(e.root, "containers", "dk4", "rootfs", storage.DiskImage)); err != nil {
		t.Errorf("create -c limits.disk=64MiB: no disk image: %v", err)
	}
	tree := filepath.Join(e.root, "containers", "dk1", "rootfs")
	e.must("config", "set", "dk1", "limits.disk=64MiB")
	if _, err := os.Stat(filepath.Join(tree, storage.DiskImage)); err != nil {
		t.Fatalf("no disk image after limits.disk=64MiB: %v", err)
	}
	e.must("start", "dk1")
	e.must("start", "dk2")
	size, used := dfRootKiB(t, e, "dk1")
	t.Logf("df / inside under limits.disk=64MiB: %d KiB, %d KiB used", size, used)
	if size < 56<<10 || size > 64<<10 {
		t.Errorf("df / inside shows %d KiB, want about 64 MiB", size)
	}
	r := e.run("exec", "dk1", "--", "dd", "if=/dev/zero", "of=/big", "bs=1M", "count=100")
	if r.code == 0 || !strings.Contains(r.stderr, "No space left on device") {
		t.Errorf("dd of 100 MiB under a 64 MiB limit: %s", r)
	}
	if _, after := dfRootKiB(t, e, "dk1"); after < used+48<<10 {
		t.Errorf("df / inside after the dd: %d KiB used, was %d", after, used)
	}
	// lodge info counts what counts against the limit.
	if got := e.storageInfo("dk1").Storage.DiskBytes; got < 48<<20 || got > 64<<20 {
		t.Errorf("lodge info: disk_bytes = %d after filling a 64 MiB limit", got)
	}
	// The host and a container without a limit are not bound by it.
	e.must("exec", "dk2", "--", "dd", "if=/dev/zero", "of=/big", "bs=1M", "count=80")
	if err := os.WriteFile(filepath.Join(t.TempDir(), "host"), make([]byte, 8<<20), 0o644); err != nil {
		t.Errorf("the host cannot write: %v", err)
	}
	e.must("exec", "dk2", "--", "rm", "/big")
	// Running: the limit is not moved to another image under the container.
	e.expectFail(4, "stop it first", "config", "set", "dk1", "limits.disk=32MiB")
	e.expectFail(4, "stop it first", "config", "set", "dk1", "limits.disk=0")
	if got := e.must("config", "show", "dk1"); !strings.Contains(got, `disk = "64MiB"`) {
		t.Errorf("limits.disk after refused changes = %q", got)
	}
	e.must("exec", "dk1", "--", "sh", "-c", "rm /big && echo kept > /root/kept && rm /bin/vi")
	e.must("stop", "dk1")
	e.must("start", "dk1")
	if got := e.must("exec", "dk1", "--", "cat", "/root/kept"); got != "kept\n" {
		t.Errorf("/root/kept after restart = %q", got)
	}
	if r := e.run("exec", "dk1", "--", "ls", "/bin/vi"); r.code == 0 {
		t.Errorf("a deleted file is back after restart: %s", r)
	}
	if size, _ := dfRootKiB(t, e, "dk1"); size < 56<<10 || size > 64<<10 {
		t.Errorf("df / after restart shows %d KiB", size)
	}
	// A live copy keeps the limit.
	e.must("copy", "dk1", "dk3")
	e.must("start", "dk3")
	if size, _ := dfRootKiB(t, e, "dk3"); size < 56<<10 || size > 64<<10 {
		t.Errorf("df / in the copy shows %d KiB, want the source's limit", size)
	}
	if got := e.must("exec", "dk3", "--", "cat", "/root/kept"); got != "kept\n" {
		t.Errorf("/root/kept in the copy = %q", got)
	}
	// Stopped, the limit changes and goes, data kept.
	e.must("stop", "dk1")
	e.must("config", "set", "dk1", "limits.disk=32MiB")
	e.must("start", "dk1")
	if size, _ := dfRootKiB(t, e, "dk1"); size < 24<<10 || size > 32<<10 {
		t.Errorf("df / after limits.disk=32MiB shows %d KiB", size)
	}
	e.must("stop", "dk1")
	// A snapshot of the stopped container copies its upper out of the
	// image; a restore brings it back and keeps the limit.
	e.must("snapshot", "create", "dk1", "s1")
	e.must("start", "dk1")
	e.must("exec", "dk1", "--", "touch", "/root/after")
	e.must("stop", "dk1")
	e.must("snapshot", "restore", "dk1", "s1")
	e.must("start", "dk1")
	if r := e.run("exec", "dk1", "--", "ls", "/root/after"); r.code == 0 {
		t.Errorf("a file made after the snapshot is there after the restore: %s", r)
	}
	if got := e.must("exec", "dk1", "--", "cat", "/root/kept"); got != "kept\n" {
		t.Errorf("/root/kept after the restore = %q", got)
	}
	if size, _ := dfRootKiB(t, e, "dk1"); size < 24<<10 || size > 32<<10 {
		t.Errorf("df / after the restore shows %d KiB", size)
	}
	e.must("stop", "dk1")
	e.must("config", "set", "dk1", "limits.disk=0")
	if _, err := os.Stat(filepath.Join(tree, storage.DiskImage)); !os.IsNotExist(err) {
		t.Errorf("disk image after limits.disk=0: %v", err)
	}
	e.must("start", "dk1")
	if got := e.must("exec", "dk1", "--", "cat", "/root/kept"); got != "kept\n" {
		t.Errorf("/root/kept without the limit = %q", got)
	}
	e.must("config", "set", "dk1", "limits.disk=") // back to no limit while running: nothing to do
	for _, name := range []string{"dk1", "dk2", "dk3", "dk4"} {
		e.must("delete", "--force", name)
		if _, err := os.Lstat(filepath.Join(e.root, "containers", name)); !os.IsNotExist(err) {
			t.Errorf("%s after delete: %v", name, err)
		}
	}
	e.assertNoLeftovers("")
	var left []string
	for range 100 { // autoclear detaches a loop device just after its last mount goes
		if left = loopsUnder(e.root); len(left) == 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(left) > 0 {
		t.Errorf("loop devices left after delete: %v", left)
	}
}
