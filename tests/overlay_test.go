package tests

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"lodge/storage"
)

// storageRecord reads containers/NAME/storage.json.
func storageRecord(t *testing.T, e *env, name string) (backend, image string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(e.root, "containers", name, "storage.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rec struct{ Backend, Image string }
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatal(err)
	}
	return rec.Backend, rec.Image
}

// treeSum hashes every path of dir with its type, mode, owner, size, mtime,
// xattrs and file contents: any change of the tree changes the sum.
func treeSum(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		rel, _ := filepath.Rel(dir, path)
		fmt.Fprintf(h, "%s %o %d:%d %d %d.%d %d\n", rel, st.Mode, st.Uid, st.Gid, st.Size, st.Mtim.Sec, st.Mtim.Nsec, st.Rdev)
		buf := make([]byte, 4096)
		if n, err := unix.Llistxattr(path, buf); err == nil {
			h.Write(buf[:n])
		}
		if fi.Mode().IsRegular() {
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			io.Copy(h, f)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// requireOverlayDefault skips unless auto picks overlay for the env's root
// (ext4 here; btrfs roots get btrfs, kernels without lowerdir+ get dir).
func requireOverlayDefault(t *testing.T, e *env, name string) {
	t.Helper()
	if backend, _ := storageRecord(t, e, name); backend != "overlay" {
		t.Skipf("auto chose the %s storage backend for %s, not overlay (a btrfs root, or a kernel without overlay in user namespaces)", backend, e.root)
	}
}

// TestOverlayBusybox: on this host, auto makes overlay containers: they
// boot, keep a new file and the deletion of an image file across a restart,
// run exec --user, never change the image, and their image cannot be deleted
// while they stand on it; deleting the container removes its tree and lets
// the image go.
func TestOverlayBusybox(t *testing.T) {
	e := newEnv(t)
	e.setImages(t.TempDir()) // a private cache: the test deletes its image
	e.createBusybox("ov1")
	requireOverlayDefault(t, e, "ov1")
	_, imageID := storageRecord(t, e, "ov1")
	image := filepath.Join(e.imageDir, imageID, "rootfs")
	before := treeSum(t, image)
	tree := filepath.Join(e.root, "containers", "ov1", "rootfs")
	for _, f := range []string{"upper", "work", "layers.json"} {
		if _, err := os.Lstat(filepath.Join(tree, f)); err != nil {
			t.Fatalf("overlay tree: %v", err)
		}
	}
	e.must("start", "ov1")
	if got := e.must("exec", "ov1", "--", "cat", "/etc/hostname"); got != "ov1\n" {
		t.Errorf("hostname file = %q", got)
	}
	if root := e.must("exec", "ov1", "--", "sh", "-c", "grep ' / ' /proc/self/mounts"); !strings.Contains(root, " overlay ") {
		t.Errorf("the root is not an overlay: %q", root)
	}
	// The layers the root was made from are not mounted inside.
	for _, line := range strings.Split(e.must("exec", "ov1", "--", "cat", "/proc/self/mountinfo"), "\n") {
		if f := strings.Fields(line); len(f) > 4 && (strings.Contains(f[4], "stage") || f[4] == "/l" || strings.HasPrefix(f[4], "/l/")) {
			t.Errorf("a layer mount is visible inside: %s", line)
		}
	}
	e.must("exec", "ov1", "--", "sh", "-c", "echo kept > /root/new-file && rm /bin/vi && rm -r /etc/init.d && mkdir /etc/init.d")
	if got := strings.TrimSpace(e.must("exec", "ov1", "--user", "nobody", "--", "id", "-u")); got != "65534" {
		t.Errorf("exec --user nobody: id -u = %q", got)
	}
	e.must("stop", "ov1")
	e.must("start", "ov1")
	if got := e.must("exec", "ov1", "--", "cat", "/root/new-file"); got != "kept\n" {
		t.Errorf("new file after restart = %q", got)
	}
	if r := e.run("exec", "ov1", "--", "ls", "/bin/vi"); r.code == 0 {
		t.Errorf("deleted image file is back after restart: %s", r)
	}
	if got := e.must("exec", "ov1", "--", "ls", "-A", "/etc/init.d"); got != "" {
		t.Errorf("replaced directory shows the image's entries: %q", got)
	}
	// On disk: natural ids in the upper, the deletion a whiteout.
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(tree, "upper/root/new-file"), &st); err != nil || st.Uid != 0 {
		t.Errorf("upper/root/new-file: uid %d, %v", st.Uid, err)
	}
	if err := unix.Lstat(filepath.Join(tree, "upper/bin/vi"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("upper/bin/vi is not a whiteout: %o, %v", st.Mode, err)
	}
	// A snapshot through the backend (the stopped container's upper frozen
	// into a shared layer): the container boots from the stacked layers,
	// and a restore brings back what it held.
	e.must("stop", "ov1")
	backend, err := storage.New("overlay", e.root)
	if err != nil {
		t.Fatal(err)
	}
	snap := filepath.Join(e.root, "containers", "ov1", "snapshots", "s1")
	if err := os.MkdirAll(snap, 0o700); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := backend.Snapshot(ctx, tree, filepath.Join(snap, "rootfs"), storage.Options{}); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(filepath.Join(tree, "upper")); len(entries) != 0 {
		t.Errorf("upper after the snapshot froze it: %d entries", len(entries))
	}
	e.must("start", "ov1")
	if got := e.run("exec", "ov1", "--", "sh", "-c", "cat /root/new-file; ls /bin/vi 2>&1; ls -A /etc/init.d; echo changed > /root/new-file; touch /after-snapshot").stdout; !strings.Contains(got, "kept\n") || !strings.Contains(got, "No such file") {
		t.Errorf("booted from the frozen layer: %q", got)
	}
	e.must("stop", "ov1")
	if err := backend.Restore(ctx, filepath.Join(snap, "rootfs"), tree, storage.Options{}); err != nil {
		t.Fatal(err)
	}
	e.must("start", "ov1")
	if got := e.run("exec", "ov1", "--", "sh", "-c", "cat /root/new-file; ls /after-snapshot 2>&1").stdout; !strings.Contains(got, "kept\n") || !strings.Contains(got, "No such file") {
		t.Errorf("after restore: %q", got)
	}
	e.expectFail(4, "ov1/s1", "image", "delete", imageID)
	e.must("stop", "ov1")
	if after := treeSum(t, image); after != before {
		t.Errorf("the image changed under its overlay container")
	}
	e.must("delete", "ov1")
	if _, err := os.Lstat(filepath.Join(e.root, "containers", "ov1")); !os.IsNotExist(err) {
		t.Errorf("container directory after delete: %v", err)
	}
	if layers, _ := os.ReadDir(filepath.Join(e.root, "storage", "overlay", "layers")); len(layers) != 0 {
		t.Errorf("shared layers left after the delete: %d", len(layers))
	}
	e.must("image", "delete", imageID)
}

// TestOverlayDebianSystemd: Debian with systemd on overlay storage (the
// shared image cache as its lower layer) boots to "running" with no failed
// unit, keeps its writes across a restart, and leaves the image untouched.
func TestOverlayDebianSystemd(t *testing.T) {
	e := newEnv(t)
	e.must("create", "od1", "--template", "debian")
	requireOverlayDefault(t, e, "od1")
	_, imageID := storageRecord(t, e, "od1")
	image := filepath.Join(sharedImages, imageID, "rootfs")
	before := treeSum(t, image)
	e.must("start", "od1")
	waitRunning(t, e, "od1")
	if failed := e.must("exec", "od1", "--", "systemctl", "--failed", "--no-legend"); strings.TrimSpace(failed) != "" {
		t.Errorf("failed units:\n%s", failed)
	}
	e.must("exec", "od1", "--", "sh", "-c", "echo kept > /root/new-file && rm /etc/issue.net")
	if got := strings.TrimSpace(e.must("exec", "od1", "--user", "nobody", "--", "id", "-un")); got != "nobody" {
		t.Errorf("exec --user nobody: id -un = %q", got)
	}
	r := e.run("stop", "od1")
	if r.code != 0 || strings.Contains(r.stderr, "killed") {
		t.Fatalf("graceful stop of systemd on overlay: %s", r)
	}
	e.must("start", "od1")
	waitRunning(t, e, "od1")
	if got := e.must("exec", "od1", "--", "cat", "/root/new-file"); got != "kept\n" {
		t.Errorf("new file after restart = %q", got)
	}
	if r := e.run("exec", "od1", "--", "ls", "/etc/issue.net"); r.code == 0 {
		t.Errorf("deleted image file is back after restart: %s", r)
	}
	e.must("stop", "od1")
	if after := treeSum(t, image); after != before {
		t.Errorf("the image changed under its overlay container")
	}

	// A copy-on-write clone boots systemd as a machine of its own.
	e.must("copy", "od1", "od2", "--snapshot")
	e.must("start", "od2")
	waitRunning(t, e, "od2")
	if failed := e.must("exec", "od2", "--", "systemctl", "--failed", "--no-legend"); strings.TrimSpace(failed) != "" {
		t.Errorf("failed units in the clone:\n%s", failed)
	}
	if got := strings.TrimSpace(e.must("exec", "od2", "--", "hostname")); got != "od2" {
		t.Errorf("the clone's hostname = %q, want od2", got)
	}
	if got := e.must("exec", "od2", "--", "cat", "/root/new-file"); got != "kept\n" {
		t.Errorf("the source's file in the clone = %q", got)
	}
	e.must("start", "od1")
	waitRunning(t, e, "od1")
	id1 := e.must("exec", "od1", "--", "cat", "/etc/machine-id")
	id2 := e.must("exec", "od2", "--", "cat", "/etc/machine-id")
	if id1 == id2 || len(strings.TrimSpace(id2)) != 32 {
		t.Errorf("machine-ids: source %q, clone %q: want two different ids", id1, id2)
	}
	e.must("stop", "od1")
	e.must("stop", "od2")
}

// TestOverlayRefusesChownShift: overlay's layers are shared, so a container
// asking for a chown shift is refused at start, saying what to do.
func TestOverlayRefusesChownShift(t *testing.T) {
	e := newEnv(t)
	e.createBusybox("ovc", "rootfs.shift=chown")
	requireOverlayDefault(t, e, "ovc")
	e.expectFail(1, "dir backend", "start", "ovc")
	e.assertNoLeftovers("ovc")
}

// TestOverlayManyLayers: a container on a stack of 100 frozen layers (one
// snapshot after each change) boots, sees every layer's file, and its delete
// collects every layer.
func TestOverlayManyLayers(t *testing.T) {
	e := newEnv(t)
	e.createBusybox("deep")
	requireOverlayDefault(t, e, "deep")
	backend, err := storage.New("overlay", e.root)
	if err != nil {
		t.Fatal(err)
	}
	tree := filepath.Join(e.root, "containers", "deep", "rootfs")
	const n = 100
	for i := range n {
		e.editRootfs("deep", func(dir string) {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("layer-%03d", i)), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		})
		snap := filepath.Join(e.root, "containers", "deep", "snapshots", fmt.Sprint(i))
		if err := os.MkdirAll(snap, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := backend.Snapshot(context.Background(), tree, filepath.Join(snap, "rootfs"), storage.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	e.must("start", "deep")
	if got := strings.TrimSpace(e.must("exec", "deep", "--", "sh", "-c", "ls / | grep -c '^layer-'")); got != fmt.Sprint(n) {
		t.Errorf("files of %d layers seen inside: %s", n, got)
	}
	e.must("delete", "--force", "deep")
	if layers, _ := os.ReadDir(filepath.Join(e.root, "storage", "overlay", "layers")); len(layers) != 0 {
		t.Errorf("shared layers left after the delete: %d", len(layers))
	}
}
