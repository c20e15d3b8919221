package rootfs

import (
	"os"
	"path/filepath"
	"testing"
)

// TestResolveInRoot: a container's absolute symlinks resolve inside its root
// filesystem, never on the host.
func TestResolveInRoot(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "usr/lib/systemd"), 0o755)
	os.WriteFile(filepath.Join(root, "usr/lib/systemd/systemd"), nil, 0o755)
	os.Symlink("usr/lib", filepath.Join(root, "lib"))
	os.MkdirAll(filepath.Join(root, "sbin"), 0o755)
	os.Symlink("/lib/systemd/systemd", filepath.Join(root, "sbin/init"))
	os.Symlink("/etc/shadow", filepath.Join(root, "escape"))
	got, err := ResolveInRoot(root, "/sbin/init")
	if err != nil || got != "/usr/lib/systemd/systemd" {
		t.Fatalf("ResolveInRoot(/sbin/init) = %q, %v", got, err)
	}
	if f, err := OpenInRoot(root, "/escape"); err == nil {
		f.Close()
		t.Fatal("a symlink to /etc/shadow was followed out of the root")
	}
}
