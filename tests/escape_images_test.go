package tests

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// The escape suite's image part: a tarball as a hostile tenant would hand
// over (a setuid-root program, a program setuid to a uid no container maps,
// device nodes, a member climbing out of the root) is imported; no host user
// can reach, run or open any of it under the lodge root or the image cache,
// the import says what it changed, and inside the container setuid root still
// works.

// buildUIDProbe compiles tests/testdata/probe.c, static (it runs on the host and
// in busybox containers), into a directory every host user can search.
func buildUIDProbe(t *testing.T) string {
	t.Helper()
	dir := publicTempDir(t)
	cc := "cc"
	if path, err := exec.LookPath("musl-gcc"); err == nil {
		cc = path
	}
	probe := filepath.Join(dir, "probe")
	if out, err := exec.Command(cc, "-static", "-O2", "-Wall", "-Werror", "-o", probe, "testdata/probe.c").CombinedOutput(); err != nil {
		t.Fatalf("build the probe: %v\n%s", err, out)
	}
	return probe
}

// publicTempDir is a temporary directory any host user may search, as
// /var/lib/lodge and /var/cache are (t.TempDir is 0700, which would hide
// everything under it from the host user and prove nothing).
func publicTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "lodge-public-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	mustOK(t, os.Chmod(dir, 0o755))
	return dir
}

// openUp makes dir and its parents up to /tmp searchable by every host user.
func openUp(t *testing.T, dir string) {
	t.Helper()
	for d := dir; d != "/tmp" && d != "/"; d = filepath.Dir(d) {
		mustOK(t, os.Chmod(d, 0o755))
	}
}

func mustOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// asNobody runs argv as uid and gid 65534, the host user of the attacks.
func asNobody(argv ...string) (string, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// hostileTarball writes the busybox image of e, plus the hostile members, to
// a tarball and returns its path. outside is a host directory a symlink in
// the tarball points to, with a member to be written through it.
func hostileTarball(t *testing.T, e *env, probe, outside string) string {
	t.Helper()
	var busybox string
	for _, img := range e.images() {
		if img.Template == "busybox" {
			busybox = img.ID
		}
	}
	if busybox == "" {
		t.Fatal("no busybox image to start from")
	}
	dir := t.TempDir()
	base := filepath.Join(dir, "busybox.tar")
	e.must("image", "export", busybox, base)
	program, err := os.ReadFile(probe)
	mustOK(t, err)
	in, err := os.Open(base)
	mustOK(t, err)
	defer in.Close()
	file := filepath.Join(dir, "hostile.tar")
	out, err := os.Create(file)
	mustOK(t, err)
	defer out.Close()
	tw := tar.NewWriter(out)
	tr := tar.NewReader(in)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		mustOK(t, err)
		mustOK(t, tw.WriteHeader(h))
		_, err = io.Copy(tw, tr)
		mustOK(t, err)
	}
	file1 := func(name string, mode int64, uid int) *tar.Header {
		return &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: mode, Uid: uid, Gid: uid, Size: int64(len(program))}
	}
	for _, h := range []*tar.Header{
		file1("./usr/bin/probe", 0o4755, 0),          // setuid root: must work inside, never on the host
		file1("./usr/bin/probe-evil", 0o6755, 70000), // setuid to a uid no container maps
		file1("./usr/bin/probe-plain", 0o755, 0),
		{Name: "./dev/mem", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 1},
		{Name: "./dev/sda", Typeflag: tar.TypeBlock, Mode: 0o666, Devmajor: 8, Devminor: 0},
		{Name: "./root/kmem", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 2},
		{Name: "./tmp/mem2", Typeflag: tar.TypeLink, Linkname: "./dev/mem"},
		{Name: "../../escape", Typeflag: tar.TypeReg, Mode: 0o4755, Size: int64(len(program))},
		{Name: "./etc/evil-link", Typeflag: tar.TypeSymlink, Linkname: outside},
		{Name: "./etc/evil-link/escape", Typeflag: tar.TypeReg, Mode: 0o4755, Size: int64(len(program))},
	} {
		mustOK(t, tw.WriteHeader(h))
		if h.Typeflag == tar.TypeReg {
			_, err := tw.Write(program)
			mustOK(t, err)
		}
	}
	mustOK(t, tw.Close())
	return file
}

func TestEscapeImportedImage(t *testing.T) {
	e := newEnv(t)
	probe := buildUIDProbe(t)
	openUp(t, e.root)
	base := publicTempDir(t)
	images := filepath.Join(base, "images")
	e.setImages(images)
	// The layout an older lodge left: directories every host user may search.
	for _, dir := range []string{filepath.Join(e.root, "tmp"), filepath.Join(e.root, "images"), images} {
		mustOK(t, os.MkdirAll(dir, 0o711))
		mustOK(t, os.Chmod(dir, 0o711))
	}
	e.createBusybox("src")
	outside := publicTempDir(t)
	tarball := hostileTarball(t, e, probe, outside)

	out := e.must("image", "import", tarball, "--alias", "hostile")
	for _, want := range []string{
		"removed 4 device nodes (dev/mem; dev/sda; root/kmem; tmp/mem2)",
		"cleared setuid on 1 file owned by a uid outside 0..65535 (usr/bin/probe-evil, uid 70000)",
		"skipped 2 members whose names leave the root or pass through symlinks (../../escape; etc/evil-link/escape)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("lodge image import did not say %q:\n%s", want, out)
		}
	}
	var listed []struct {
		Aliases []string `json:"aliases"`
		Changes []string `json:"changes"`
	}
	mustOK(t, json.Unmarshal([]byte(e.must("image", "list", "--format", "json")), &listed))
	kept := false
	for _, img := range listed {
		kept = kept || len(img.Aliases) > 0 && img.Aliases[0] == "hostile" && len(img.Changes) >= 3
	}
	if !kept {
		t.Errorf("the changes are not in the image's metadata: %+v", listed)
	}
	for _, escaped := range []string{filepath.Join(images, "escape"), filepath.Join(base, "escape"), "/tmp/escape", filepath.Join(outside, "escape")} {
		if _, err := os.Lstat(escaped); err == nil {
			t.Errorf("a member climbed out of the root to %s", escaped)
		}
	}

	e.must("create", "c1", "--image", "hostile")
	e.must("start", "c1")
	if got := strings.TrimSpace(e.must("exec", "c1", "--", "hostname")); got != "c1" {
		t.Errorf("the container made from the image: hostname %q", got)
	}
	t.Run("inside", func(t *testing.T) { checkInsideHostile(t, e) })
	t.Run("host", func(t *testing.T) { checkHostCannotReach(t, e, images, probe) })
}

// checkInsideHostile: setuid root works in the container, setuid to an
// unmapped uid does not, and the device nodes are gone.
func checkInsideHostile(t *testing.T, e *env) {
	if got := strings.TrimSpace(e.must("exec", "c1", "--user", "nobody", "--", "/usr/bin/probe", "euid")); got != "0" {
		t.Errorf("setuid-root program run by nobody inside the container: euid %q, want 0", got)
	}
	if got := strings.TrimSpace(e.must("exec", "c1", "--user", "nobody", "--", "/usr/bin/probe-evil", "euid")); got != "65534" {
		t.Errorf("program setuid to uid 70000, run by nobody inside: euid %q, want 65534", got)
	}
	if got := strings.TrimSpace(e.must("exec", "c1", "--", "stat", "-c", "%a %u %g", "/usr/bin/probe-evil")); got != "755 65534 65534" {
		t.Errorf("mode and owner of the uid 70000 program inside: %q, want 755 65534 65534", got)
	}
	for _, dev := range []string{"/dev/mem", "/dev/sda", "/root/kmem", "/tmp/mem2"} {
		if r := e.run("exec", "c1", "--", "/usr/bin/probe", "open", dev); r.code == 0 {
			t.Errorf("%s opens inside the container: %s", dev, r.stdout)
		}
	}
}

// checkHostCannotReach: as a host user, nothing of an image or a container's
// root filesystem can be reached, run or opened, at any path.
func checkHostCannotReach(t *testing.T, e *env, images, probe string) {
	if out, err := asNobody(probe, "stat", filepath.Join(e.root, "containers")); err != nil {
		t.Fatalf("control: nobody cannot reach ROOT/containers, so this test proves nothing: %s", out)
	}
	for _, dir := range []string{images, filepath.Join(e.root, "images"), filepath.Join(e.root, "tmp")} {
		if fi, err := os.Stat(dir); err != nil {
			t.Error(err)
		} else if fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v, want 0700", dir, fi.Mode())
		}
	}
	skip := e.viewsMount()
	var special []string
	for _, top := range []string{e.root, images} {
		for _, path := range reachableByOthers(t, top, skip) {
			if strings.HasSuffix(path, "/rootfs") || isSpecial(path) {
				t.Errorf("a host user can reach %s", path)
			}
		}
		special = append(special, specialFiles(t, top, skip)...)
	}
	// An overlay container has no copy of the image's files: its setuid
	// programs are the image's own (its lower layer).
	want := 2
	if backend, _ := storageRecord(t, e, "c1"); backend == "overlay" {
		want = 1
	}
	if len(special) < want {
		t.Fatalf("found only %v: the setuid programs of the image and its container (unless overlay) should be there", special)
	}
	for _, path := range special {
		if out, err := asNobody(probe, "stat", path); err == nil {
			t.Errorf("nobody reaches %s: %s", path, out)
		}
		if out, err := asNobody(path, "euid"); err == nil {
			t.Errorf("nobody runs %s: euid %s", path, out)
		}
		if out, err := asNobody(probe, "open", path); err == nil {
			t.Errorf("nobody opens %s: %s", path, out)
		}
	}
}

// reachableByOthers lists the paths under top that a host user who is not
// root can reach by name (search permission on every directory on the way).
func reachableByOthers(t *testing.T, top, skip string) []string {
	t.Helper()
	var reached []string
	var walk func(dir string)
	walk = func(dir string) {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return
		}
		for _, entry := range entries {
			path := filepath.Join(dir, entry.Name())
			reached = append(reached, path)
			if fi, err := os.Lstat(path); err == nil && fi.IsDir() && fi.Mode().Perm()&0o001 != 0 && path != skip {
				walk(path)
			}
		}
	}
	if fi, err := os.Stat(top); err == nil && fi.Mode().Perm()&0o001 != 0 {
		walk(top)
	}
	return reached
}

// isSpecial reports a device node, or a setuid or setgid file.
func isSpecial(path string) bool {
	fi, err := os.Lstat(path)
	return err == nil && (fi.Mode()&os.ModeDevice != 0 || fi.Mode().IsRegular() && fi.Mode()&(os.ModeSetuid|os.ModeSetgid) != 0)
}

// specialFiles lists, as root, every device node and setuid or setgid file
// under top. Device nodes must not exist at all.
func specialFiles(t *testing.T, top, skip string) []string {
	t.Helper()
	var found []string
	filepath.WalkDir(top, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if path == skip {
			return filepath.SkipDir
		}
		if !isSpecial(path) {
			return nil
		}
		if d.Type()&fs.ModeDevice != 0 {
			t.Errorf("a device node is on the host: %s", path)
		}
		found = append(found, path)
		return nil
	})
	return found
}

// TestOlderImageRechecked: an image an older lodge made (device nodes in its
// tree, a directory others may search, no record of a check) is brought under
// today's rules when a container is next made from it.
func TestOlderImageRechecked(t *testing.T) {
	e := newEnv(t)
	images := t.TempDir()
	e.setImages(images)
	e.createBusybox("first")
	imgs := e.images()
	if len(imgs) != 1 {
		t.Fatalf("images: %+v", imgs)
	}
	id := imgs[0].ID
	dir := filepath.Join(images, id)
	meta := filepath.Join(dir, "image.json")
	var img map[string]any
	data, err := os.ReadFile(meta)
	mustOK(t, err)
	mustOK(t, json.Unmarshal(data, &img))
	delete(img, "checked")
	delete(img, "changes")
	data, _ = json.Marshal(img)
	mustOK(t, os.WriteFile(meta, data, 0o644))
	mustOK(t, syscall.Mknod(filepath.Join(dir, "rootfs/dev/null"), syscall.S_IFCHR|0o666, 1<<8|3))
	mustOK(t, os.Chmod(dir, 0o711))
	mustOK(t, os.Chmod(images, 0o711))

	r := e.run("create", "second", "--image", id)
	if r.code != 0 || !strings.Contains(r.stderr, "removed 1 device node (dev/null)") {
		t.Errorf("create from an older image: want the removal of dev/null reported, got %s", r)
	}
	if _, err := os.Lstat(filepath.Join(dir, "rootfs/dev/null")); err == nil {
		t.Errorf("the device node is still in the image")
	}
	for _, d := range []string{dir, images} {
		if fi, err := os.Stat(d); err != nil {
			t.Error(err)
		} else if fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v, want 0700", d, fi.Mode())
		}
	}
	data, _ = os.ReadFile(meta)
	if !strings.Contains(string(data), `"checked": 1`) || !strings.Contains(string(data), "dev/null") {
		t.Errorf("the check is not recorded in image.json:\n%s", data)
	}
	if r := e.run("create", "third", "--image", id); r.code != 0 || strings.Contains(r.stderr, "older lodge") {
		t.Errorf("a checked image is checked again: %s", r)
	}
}
