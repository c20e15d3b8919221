package templates

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDebianOptionChecks(t *testing.T) {
	debian := Debian()
	good := []map[string]string{
		{"release": "trixie", "mirror": "https://deb.debian.org/debian", "packages": "openssh-server, less,g++"},
		{"mirror": "file:///srv/mirror/debian", "init": "sysvinit", "variant": "standard"},
		{"mirror": "http://127.0.0.1:3142/deb.debian.org/debian"},
	}
	for _, opts := range good {
		if _, err := debian.ResolveOptions(opts, nil); err != nil {
			t.Errorf("%v refused: %v", opts, err)
		}
	}
	bad := []struct {
		opts map[string]string
		want string
	}{
		{map[string]string{"release": "../../x"}, `option release="../../x": use lowercase letters`},
		{map[string]string{"release": "Bookworm"}, "release"},
		{map[string]string{"release": "-bookworm"}, "release"},
		{map[string]string{"mirror": "http://m/debian main\ndeb http://evil x"}, "not a plain URL"},
		{map[string]string{"mirror": "--keyring=/x"}, "mirror"},
		{map[string]string{"mirror": "ftp://m/debian"}, "http://"},
		{map[string]string{"mirror": "file://host/x"}, "mirror"},
		{map[string]string{"mirror": "http://m/../../x"}, "mirror"},
		{map[string]string{"packages": "less,--foo"}, "not a Debian package name"},
		{map[string]string{"packages": "a b"}, "packages"},
		{map[string]string{"init": "openrc"}, "use systemd or sysvinit"},
	}
	for _, c := range bad {
		_, err := debian.ResolveOptions(c.opts, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want one with %q", c.opts, err, c.want)
		}
	}
	// Host defaults pass the same checks.
	if _, err := debian.ResolveOptions(nil, map[string]string{"release": "../x"}); err == nil {
		t.Errorf("a bad host default was accepted")
	}
}

func TestTemplateImageIDIsAFileName(t *testing.T) {
	for _, release := range []string{"bookworm", "../../../x", "a/b", ""} {
		id := TemplateImageID(Debian(), map[string]string{"release": release})
		if err := checkID(id); err != nil {
			t.Errorf("release %q: %v", release, err)
		}
	}
}

// TestWriteInRootStaysInside: a hostile image's /etc, /etc/hostname and
// /etc/hosts symlinks to host files are resolved inside the root or replaced.
func TestWriteInRootStaysInside(t *testing.T) {
	outside := t.TempDir()
	victim := filepath.Join(outside, "passwd")
	os.WriteFile(victim, []byte("keep\n"), 0o644)
	rootfs := t.TempDir()
	os.Mkdir(filepath.Join(rootfs, "real-etc"), 0o755)
	os.Symlink("/real-etc", filepath.Join(rootfs, "etc")) // absolute: the container's /real-etc
	os.Symlink(victim, filepath.Join(rootfs, "real-etc", "hostname"))
	os.Symlink("../../../../../../../../"+victim, filepath.Join(rootfs, "real-etc", "hosts"))
	if err := ConfigureHostname(rootfs, "c1"); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(victim); string(data) != "keep\n" {
		t.Fatalf("a file outside the root was written: %q", data)
	}
	for _, name := range []string{"hostname", "hosts"} {
		fi, err := os.Lstat(filepath.Join(rootfs, "real-etc", name))
		if err != nil || !fi.Mode().IsRegular() {
			t.Errorf("/etc/%s is not a regular file inside the root: %v %v", name, fi, err)
		}
	}
	os.Remove(filepath.Join(rootfs, "etc"))
	os.Symlink(outside, filepath.Join(rootfs, "etc"))
	if err := ConfigureHostname(rootfs, "c1"); err == nil {
		if _, err := os.Stat(filepath.Join(outside, "hostname")); err == nil {
			t.Fatalf("/etc pointing at a host directory was written into")
		}
	}
}
