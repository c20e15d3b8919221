package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// btrfsRootEnv is an env whose lodge root is on the btrfs filesystem
// mounted at mnt, with storage.backend = auto (so btrfs).
func btrfsRootEnv(t *testing.T, mnt string) *env {
	t.Helper()
	e := newEnv(t)
	e.root = filepath.Join(mnt, "lodge")
	if err := os.Mkdir(e.root, 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(e.hostConfig, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("[storage]\nbackend = \"auto\"\n"); err != nil {
		t.Fatal(err)
	}
	return e
}

// TestBtrfsDiskLimitRefusesSubvolumes: a subvolume or snapshot made inside
// a container has a qgroup of its own, outside the container's limit
// (docs/storage-btrfs.md), so a container with limits.disk may not make
// one: the four btrfs ioctls fail with ENOTTY, from init (busybox's rcS) and
// from exec, also with the request's high word set, which the kernel drops.
// A container without a limit makes them all, the high-word one included
// (so the kernel does take it, and the filter must compare the low word).
// Other ioctls pass. A limit set on a stopped container binds from its next
// start. Deleting a container removes what it made.
func TestBtrfsDiskLimitRefusesSubvolumes(t *testing.T) {
	mnt := mountLoopBtrfs(t, 1<<30)
	e := btrfsRootEnv(t, mnt)
	probe := buildProbe(t)
	requests := []string{"subvol_create", "subvol_create_high", "subvol_create_v2", "snap_create", "snap_create_v2"}
	for _, c := range []struct {
		name   string
		config []string
		answer string // to each of the requests
	}{
		{"svfree", nil, "ok"},
		{"svlimited", []string{"limits.disk=64MiB"}, "ENOTTY"},
	} {
		t.Run(c.name, func(t *testing.T) {
			want := map[string]string{"getflags": "ok"}
			for _, r := range requests {
				want[r] = c.answer
			}
			e.createBusybox(c.name, c.config...)
			rootfs := filepath.Join(e.root, "containers", c.name, "rootfs")
			initOut := subvolumesFromInit(t, e, c.name, rootfs, probe)
			t.Logf("from init:\n%s", initOut)
			checkProbe(t, initOut, want)
			execOut := e.must("exec", c.name, "--", "/lodge-probe", "subvolumes", "/", "exec-")
			checkProbe(t, execOut, want)

			made := containerSubvolumes(t, mnt, c.name)
			if n := 2 * len(requests); c.answer == "ok" && len(made) != n {
				t.Errorf("subvolumes in %s: %v, want the %d the probes made", c.name, made, n)
			} else if c.answer != "ok" && len(made) != 0 {
				t.Errorf("subvolumes in %s under a disk limit: %v, want none", c.name, made)
			}
			e.must("stop", c.name)
			if c.answer == "ok" {
				// A limit set later binds from the next start.
				e.must("config", "set", c.name, "limits.disk=64MiB")
				e.must("start", c.name)
				later := e.must("exec", c.name, "--", "/lodge-probe", "subvolumes", "/", "later-")
				checkProbe(t, later, map[string]string{"subvol_create": "ENOTTY", "snap_create_v2": "ENOTTY", "getflags": "ok"})
				e.must("stop", c.name)
			}
			e.must("delete", c.name)
			if left := containerSubvolumes(t, mnt, c.name); len(left) != 0 {
				t.Errorf("subvolumes left after deleting %s: %v", c.name, left)
			}
		})
	}
}

// subvolumesFromInit starts container name with the probe in its root and
// busybox's rcS (a child of init, under init's filter) running its
// subvolumes test, and returns the report.
func subvolumesFromInit(t *testing.T, e *env, name, rootfs, probe string) string {
	t.Helper()
	data, err := os.ReadFile(probe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "lodge-probe"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	rcS := filepath.Join(rootfs, "etc/init.d/rcS")
	script, err := os.ReadFile(rcS)
	if err != nil {
		t.Fatal(err)
	}
	script = append(script, "/lodge-probe subvolumes / init- > /subvol-init.tmp 2>&1; mv /subvol-init.tmp /subvol-init.out\n"...)
	if err := os.WriteFile(rcS, script, 0o755); err != nil {
		t.Fatal(err)
	}
	e.must("start", name)
	var out []byte
	waitUntil(t, "the probe's report from rcS", func() bool {
		out, _ = os.ReadFile(filepath.Join(rootfs, "subvol-init.out"))
		return len(out) > 0
	})
	return string(out)
}

// containerSubvolumes lists the subvolumes inside container name's root.
func containerSubvolumes(t *testing.T, mnt, name string) []string {
	t.Helper()
	prefix := fmt.Sprintf("lodge/containers/%s/rootfs/", name)
	var in []string
	for _, s := range btrfsSubvolumes(t, mnt) {
		if strings.HasPrefix(s, prefix) {
			in = append(in, s)
		}
	}
	return in
}
