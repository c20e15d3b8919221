package templates

import (
	"context"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// HostBusybox is where Debian's busybox-static package installs its binary.
const HostBusybox = "/bin/busybox"

// Busybox is a tiny system made of the host's static busybox: busybox init, a
// getty on the console, and every applet linked in.
func Busybox() Template {
	return Template{
		Name:        "busybox",
		Description: "minimal system from the host's static busybox (Debian package busybox-static)",
		Revision:    2, // 2: /tmp and /var/tmp sticky
		Build:       buildBusybox,
		Configure:   ConfigureHostname,
	}
}

var busyboxDirs = []struct {
	path string
	mode os.FileMode
}{
	{"bin", 0o755}, {"sbin", 0o755}, {"usr/bin", 0o755}, {"usr/sbin", 0o755},
	{"etc/init.d", 0o755}, {"proc", 0o555}, {"sys", 0o555}, {"dev", 0o755}, {"run", 0o755},
	{"tmp", 0o1777}, {"root", 0o700}, {"home", 0o755}, {"mnt", 0o755}, {"var/log", 0o755},
	{"var/tmp", 0o1777},
}

// busyboxFiles are written into the new root filesystem. root's password is
// locked: set one with `lodge exec NAME -- passwd`.
var busyboxFiles = []struct {
	path    string
	mode    os.FileMode
	content string
}{
	{"etc/inittab", 0o644, `# busybox init configuration (see busybox's examples/inittab)
::sysinit:/etc/init.d/rcS
console::respawn:/sbin/getty -L 115200 console vt100
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/sync
`},
	{"etc/init.d/rcS", 0o755, `#!/bin/sh
# Runs once at boot, from /etc/inittab.
mkdir -p /var/log /tmp /run/lock
`},
	{"etc/passwd", 0o644, "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"},
	{"etc/group", 0o644, "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n"},
	{"etc/shadow", 0o600, "root:!:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n"},
	{"etc/profile", 0o644, "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nPS1='\\h:\\w\\$ '\n"},
	{"etc/shells", 0o644, "/bin/sh\n/bin/ash\n"},
}

func buildBusybox(ctx context.Context, b Build) error {
	if err := checkStaticBinary(HostBusybox); err != nil {
		return err
	}
	b.Report.Step("building a busybox root filesystem from %s", HostBusybox)
	for _, d := range busyboxDirs {
		if err := mkdirMode(filepath.Join(b.Rootfs, d.path), d.mode); err != nil {
			return err
		}
	}
	if err := copyFile(HostBusybox, filepath.Join(b.Rootfs, "bin/busybox"), 0o755); err != nil {
		return err
	}
	if err := linkApplets(ctx, b.Rootfs); err != nil {
		return err
	}
	if err := os.Symlink("/run", filepath.Join(b.Rootfs, "var/run")); err != nil {
		return err
	}
	for _, f := range busyboxFiles {
		if err := writeFileMode(filepath.Join(b.Rootfs, f.path), []byte(f.content), f.mode); err != nil {
			return err
		}
	}
	return nil
}

// checkStaticBinary makes sure the busybox copied into containers needs no
// host libraries.
func checkStaticBinary(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("busybox template needs a static busybox at %s (%v); install it: apt-get install busybox-static (make deps does this)", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked; the busybox template needs the static one: apt-get install busybox-static", path)
		}
	}
	return nil
}

// linkApplets links every applet busybox knows to /bin/busybox, at the paths
// busybox itself reports (bin/ls, sbin/init, usr/bin/env, ...).
func linkApplets(ctx context.Context, rootfs string) error {
	out, err := exec.CommandContext(ctx, HostBusybox, "--list-full").Output()
	if err != nil {
		return fmt.Errorf("list busybox applets: %w", err)
	}
	for _, applet := range strings.Fields(string(out)) {
		link := filepath.Join(rootfs, applet)
		if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
			return err
		}
		if err := os.Symlink("/bin/busybox", link); err != nil && !os.IsExist(err) {
			return fmt.Errorf("link applet %s: %w", applet, err)
		}
	}
	return nil
}

func mkdirMode(path string, mode os.FileMode) error {
	if err := os.MkdirAll(path, 0o755); err != nil {
		return err
	}
	// MkdirAll is subject to the umask, and os.Chmod takes the sticky bit
	// as os.ModeSticky only: 0o1777 would give a /tmp anyone can empty.
	return unix.Chmod(path, uint32(mode))
}

func writeFileMode(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		return err
	}
	return os.Chmod(path, mode)
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return out.Close()
}
