package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"lodge/storage"
)

// TestDiskFullLeavesOldState: a copy or a snapshot that runs out of space
// part way fails with the reason, leaves nothing half made (no container in
// list, no snapshot, no temporary tree), gives the space back, and the
// source still starts. The lodge root is a small tmpfs of the test's own, so
// the disk really fills.
func TestDiskFullLeavesOldState(t *testing.T) {
	for _, backend := range []string{"dir", "overlay"} {
		t.Run(backend, func(t *testing.T) {
			requireRoot(t)
			mnt := t.TempDir()
			if err := unix.Mount("lodge-test-full", mnt, "tmpfs", 0, "size=48m,mode=0755"); err != nil {
				t.Fatalf("mount a 48 MiB tmpfs for the root: %v", err)
			}
			// Registered before newEnv's cleanup, so it runs after it.
			t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
			e := newEnv(t)
			e.root = filepath.Join(mnt, "root")
			e.useStorage(backend)
			e.createBusybox("full")
			// 30 MiB of data in the container: a second copy of it cannot fit.
			e.must("start", "full")
			e.must("exec", "full", "--", "dd", "if=/dev/zero", "of=/data", "bs=1M", "count=30")
			e.must("exec", "full", "--", "sync")
			before := freeBytes(t, mnt)

			// The copy of a running container copies its data on both backends
			// (overlay copies the upper layer of a running container).
			r := e.run("copy", "full", "full2")
			checkFullFailure(t, e, r, "copy")
			if _, ok := e.listed("full2"); ok {
				t.Error("a copy that ran out of space is listed")
			}
			r = e.run("snapshot", "create", "full", "s1")
			checkFullFailure(t, e, r, "snapshot create")
			if out := e.must("snapshot", "list", "full"); strings.Contains(out, "s1") {
				t.Errorf("a snapshot that ran out of space is listed:\n%s", out)
			}
			if left := tempEntries(e.root); len(left) > 0 {
				t.Errorf("temporary trees left behind: %v", left)
			}
			if after := freeBytes(t, mnt); after < before-1<<20 {
				t.Errorf("free space %d bytes before the failed copies, %d after: space not given back", before, after)
			}
			// Frozen for the failed copies, thawed after them.
			e.must("exec", "full", "--", "true")
			e.must("stop", "full")
			e.must("start", "full")
			if got := e.must("exec", "full", "--", "wc", "-c", "/data"); !strings.HasPrefix(got, "31457280") {
				t.Errorf("the source's /data after the failed copies: %q", got)
			}
		})
	}
}

func checkFullFailure(t *testing.T, e *env, r result, what string) {
	t.Helper()
	if r.code == 0 {
		t.Fatalf("%s succeeded on a full filesystem: %s", what, r)
	}
	t.Logf("%s on a full filesystem: exit %d: %s", what, r.code, strings.TrimSpace(r.stderr))
	if !strings.Contains(r.stderr, "no space left on device") {
		t.Errorf("%s on a full filesystem: want the reason (no space left on device), got %s", what, r)
	}
}

func freeBytes(t *testing.T, path string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize
}

// tempEntries lists every storage temporary under root.
func tempEntries(root string) []string {
	var found []string
	filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if strings.HasPrefix(d.Name(), storage.TempPrefix) {
			found = append(found, path)
			return filepath.SkipDir
		}
		if d.IsDir() && (d.Name() == "upper" || d.Name() == "rootfs" || d.Name() == "layers") {
			return filepath.SkipDir // inside a tree: the container's own files
		}
		return nil
	})
	return found
}
