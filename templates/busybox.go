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
		Revision:    3, // 2: /tmp and /var/tmp sticky; 3: DHCP on every NIC at boot
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
# A DHCP client on every NIC lodge gave the container (eth0, ...) but those
# lodge configured with a static address. It waits
# up to three seconds for an address, then goes on trying in the background
# so that boot never hangs on a network without DHCP; it renews the lease
# while the container runs.
for dev in /sys/class/net/*; do
	dev=${dev##*/}
	[ "$dev" = lo ] && continue
	if ip -4 addr show dev "$dev" | grep -q inet; then
		# Configured by lodge: its gateway is the network's DNS server too.
		gw=$(ip route show default dev "$dev" | awk '{ print $3; exit }')
		if [ -n "$gw" ] && ! grep -q '^nameserver' /etc/resolv.conf 2>/dev/null; then
			printf 'search lodge\nnameserver %s\n' "$gw" >/etc/resolv.conf
		fi
		continue
	fi
	udhcpc -b -i "$dev" -s /etc/udhcpc.script -t 3 -T 1 -A 5 -x hostname:"$(hostname)" >/dev/null 2>&1
done
`},
	{"etc/udhcpc.script", 0o755, `#!/bin/sh
# udhcpc calls this with deconfig, bound, renew, leasefail or nak, and the
# lease in its environment (ip, mask, router, dns, domain).
case "$1" in
deconfig)
	ip -4 addr flush dev "$interface"
	ip link set "$interface" up
	;;
bound|renew)
	if ! ip -4 addr show dev "$interface" | grep -q "inet $ip/"; then
		ip -4 addr flush dev "$interface"
		ip addr add "$ip/${mask:-24}" broadcast + dev "$interface"
	fi
	for r in $router; do
		ip route replace default via "$r" dev "$interface"
		break
	done
	{
		[ -n "$domain" ] && echo "search $domain"
		for s in $dns; do echo "nameserver $s"; done
	} >/etc/resolv.conf.dhcp && mv /etc/resolv.conf.dhcp /etc/resolv.conf
	;;
esac
exit 0
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
