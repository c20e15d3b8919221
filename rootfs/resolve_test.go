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

// TestWriteFileInRoot: host root writing a container's /etc/hostname never
// follows the image's symlinks out of the root filesystem, and replaces a
// symlinked file instead of writing through it.
func TestWriteFileInRoot(t *testing.T) {
	outside := t.TempDir()
	victim := filepath.Join(outside, "victim")
	os.WriteFile(victim, []byte("host\n"), 0o600)

	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.Symlink(victim, filepath.Join(root, "etc/hostname"))
	if err := WriteFileInRoot(root, "etc/hostname", []byte("c1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(victim); string(data) != "host\n" {
		t.Fatalf("the host file behind the symlink was written: %q", data)
	}
	fi, err := os.Lstat(filepath.Join(root, "etc/hostname"))
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o644 {
		t.Fatalf("etc/hostname is %v, %v; want a regular file 0644", fi, err)
	}

	// /etc itself a link pointing out: it resolves inside the root.
	root2 := t.TempDir()
	os.Symlink("/../../../../.."+outside, filepath.Join(root2, "etc"))
	err = WriteFileInRoot(root2, "etc/victim", []byte("c1\n"), 0o644)
	if data, _ := os.ReadFile(victim); string(data) != "host\n" {
		t.Fatalf("the host file was written through a linked /etc (err %v): %q", err, data)
	}
	if err == nil {
		t.Fatal("a write through a /etc that leads nowhere inside the root succeeded")
	}
}
