package tests

import (
	"compress/gzip"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestTemplateOptionsChecked: option values that would climb out of the image
// cache or inject into debootstrap's command line and sources.list are
// refused at create, clearly, and nothing is written anywhere.
func TestTemplateOptionsChecked(t *testing.T) {
	e := newEnv(t)
	base := t.TempDir()
	images := filepath.Join(base, "a", "b", "c", "images")
	e.setImages(images)
	cases := []struct{ option, want string }{
		{"release=../../x", `option release="../../x": use lowercase letters, digits and dashes`},
		{"release=../../../../../../tmp/x", "option release"},
		{"mirror=http://deb.debian.org/debian main\ndeb http://evil/ x", "not a plain URL"},
		{"mirror=--keyring=/etc/shadow", "use an http://, https:// or file:/// URL"},
		{"packages=less,--foo", "not a Debian package name"},
	}
	for _, c := range cases {
		e.expectFail(2, c.want, "create", "x", "--template", "debian", "-o", c.option)
	}
	if infos := e.list(); len(infos) != 0 {
		t.Errorf("containers after refused creates: %+v", infos)
	}
	for _, dir := range []string{base, e.root} {
		if left := lockOrLogFiles(t, dir); len(left) > 0 {
			t.Errorf("lock or log files written: %v", left)
		}
	}
	if left := strayFiles(images); len(left) > 0 {
		t.Errorf("files written outside the image cache: %v", left)
	}
	if files := filesUnder(t, base); len(files) > 0 {
		t.Errorf("refused creates wrote %v", files)
	}
}

// TestFailedBuildsLeaveNothing: a build that fails (a mirror that refuses
// connections, on this machine) and imports that fail leave no lock, log or
// staging files in the image cache, and say why.
func TestFailedBuildsLeaveNothing(t *testing.T) {
	e := newEnv(t)
	images := t.TempDir()
	e.setImages(images)
	r := e.run("create", "x", "--template", "debian", "-o", "mirror=http://127.0.0.1:9/debian")
	if r.code == 0 || !strings.Contains(r.stderr, "debootstrap failed") || !strings.Contains(r.stderr, "127.0.0.1:9") {
		t.Errorf("create with a dead mirror: want a failure naming debootstrap and the mirror, got %s", r)
	}
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.tar.gz")
	f, err := os.Create(junk)
	mustOK(t, err)
	zw := gzip.NewWriter(f)
	zw.Write([]byte(strings.Repeat("not a tarball ", 100)))
	zw.Close()
	f.Close()
	if r := e.run("image", "import", junk, "--alias", "junk"); r.code == 0 {
		t.Errorf("importing a gzipped non-tarball: %s", r)
	}
	noRoot := filepath.Join(dir, "noroot.tar")
	mustOK(t, os.WriteFile(filepath.Join(dir, "file"), []byte("x"), 0o644))
	if out, err := exec.Command("tar", "-C", dir, "-cf", noRoot, "file").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v: %s", err, out)
	}
	if r := e.run("image", "import", noRoot, "--alias", "noroot"); r.code != 1 || !strings.Contains(r.stderr, "not a root filesystem") {
		t.Errorf("importing a tarball without etc/: %s", r)
	}
	if files := filesUnder(t, images); len(files) > 0 {
		t.Errorf("failed build and imports left %v", files)
	}
	if left := lockOrLogFiles(t, e.root); len(left) > 0 {
		t.Errorf("lock or log files left in the root: %v", left)
	}
}

// lockOrLogFiles lists *.lock and *.log files under dir, but those of the
// lodge root that are not about images (the id allocator's lock, the views
// server's files in run/).
func lockOrLogFiles(t *testing.T, dir string) []string {
	t.Helper()
	var found []string
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || strings.Contains(path, "/run/") || d.Name() == "idmap.json.lock" {
			return nil
		}
		if strings.HasSuffix(d.Name(), ".lock") || strings.HasSuffix(d.Name(), ".log") {
			found = append(found, path)
		}
		return nil
	})
	return found
}

// strayFiles lists files named as the refused releases would have named
// them (x-HASH.lock, x-HASH.log), in every directory above dir and in their
// tmp/ subdirectories: where "../" in a release would have put them.
func strayFiles(dir string) []string {
	var found []string
	for d := dir; ; d = filepath.Dir(d) {
		for _, pattern := range []string{"x-*", "tmp/x-*"} {
			matches, _ := filepath.Glob(filepath.Join(d, pattern))
			found = append(found, matches...)
		}
		if d == "/" {
			return found
		}
	}
}

// filesUnder lists what is under dir but directories.
func filesUnder(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, path)
		}
		return nil
	})
	return files
}
