package templates

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// prepareDebian adapts a fresh debootstrap tree to life as a container image.
// Each step fixes something that would otherwise fail, wait or be shared
// between containers.
func prepareDebian(rootfs string, opts map[string]string) error {
	steps := []func(string, map[string]string) error{
		clearMachineID,
		writeFstab,
		writeAptSources,
	}
	if opts["init"] == "sysvinit" {
		steps = append(steps, adaptInittab, disableHostOnlyScripts)
	} else {
		steps = append(steps, configureNetworkd, allowCheckpoint)
	}
	for _, step := range steps {
		if err := step(rootfs, opts); err != nil {
			return err
		}
	}
	return nil
}

// clearMachineID empties /etc/machine-id: debootstrap leaves the one made at
// build time, which every container would then share. An empty (not missing)
// file makes systemd generate one at first boot and keep it, without treating
// the boot as a "first boot" that prompts on the console (systemd-firstboot).
func clearMachineID(rootfs string, _ map[string]string) error {
	if err := os.WriteFile(filepath.Join(rootfs, "etc/machine-id"), nil, 0o444); err != nil {
		return err
	}
	err := os.Remove(filepath.Join(rootfs, "var/lib/dbus/machine-id"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// writeFstab leaves / out: lodge mounts the container's filesystems, and a
// remount of / from inside a user namespace fails (systemd-remount-fs).
func writeFstab(rootfs string, _ map[string]string) error {
	return writeFileMode(filepath.Join(rootfs, "etc/fstab"),
		[]byte("# lodge mounts the container's root filesystem; add other filesystems here.\n"), 0o644)
}

// writeAptSources lists the release, its updates and its security archive;
// debootstrap writes only the first.
func writeAptSources(rootfs string, opts map[string]string) error {
	release, mirror := opts["release"], opts["mirror"]
	lines := []string{fmt.Sprintf("deb %s %s main", mirror, release)}
	if release != "sid" && release != "unstable" {
		lines = append(lines,
			fmt.Sprintf("deb %s %s-updates main", mirror, release),
			fmt.Sprintf("deb http://deb.debian.org/debian-security %s-security main", release))
	}
	return writeFileMode(filepath.Join(rootfs, "etc/apt/sources.list"), []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}

// configureNetworkd readies systemd-networkd for the container's eth0 (DHCP),
// with systemd-networkd-wait-online masked so that a container without a
// network (or while DHCP answers slowly) never waits at boot.
func configureNetworkd(rootfs string, _ map[string]string) error {
	const units = "/usr/lib/systemd/system/"
	// UseDomains: the network's search domain (lodge), so that the other
	// containers' short names resolve (resolved asks for NAME.lodge).
	network := "[Match]\nName=eth0\n\n[Network]\nDHCP=yes\n\n[DHCPv4]\nUseDomains=yes\n\n[IPv6AcceptRA]\nUseDomains=yes\n"
	if err := writeFileMode(filepath.Join(rootfs, "etc/systemd/network/80-lodge-eth0.network"), []byte(network), 0o644); err != nil {
		return err
	}
	links := map[string]string{
		"etc/systemd/system/multi-user.target.wants/systemd-networkd.service": units + "systemd-networkd.service",
		"etc/systemd/system/sockets.target.wants/systemd-networkd.socket":     units + "systemd-networkd.socket",
		"etc/systemd/system/systemd-networkd-wait-online.service":             "/dev/null",
	}
	for link, target := range links {
		if err := replaceSymlink(filepath.Join(rootfs, link), target); err != nil {
			return err
		}
	}
	return nil
}

// allowCheckpoint turns ProtectHostname off for every system service (a
// type-level drop-in, so that it also covers units a package adds later):
// with it on, systemd runs the service in a UTS namespace of its own, and
// CRIU cannot dump a nested UTS namespace ("Can't dump nested uts
// namespace"), so no checkpoint of the container would work. In bookworm
// systemd-logind, systemd-localed and systemd-timedated have it; the host
// name they are kept from changing is the container's own anyway.
func allowCheckpoint(rootfs string, _ map[string]string) error {
	const dropIn = "# lodge: no service of its own UTS namespace, which CRIU cannot checkpoint\n" +
		"# (lodge checkpoint, lodge stop --stateful).\n[Service]\nProtectHostname=no\n"
	return writeFileMode(filepath.Join(rootfs, "etc/systemd/system/service.d/lodge-checkpoint.conf"), []byte(dropIn), 0o644)
}

func replaceSymlink(path, target string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	os.Remove(path)
	return os.Symlink(target, path)
}

var (
	powerfailLine = regexp.MustCompile(`(?m)^[^#\n]*:(powerwait|powerfail|powerfailnow|powerokwait):.*$`)
	ttyGettyLine  = regexp.MustCompile(`(?m)^[^#\n:]+:[0-9]*:respawn:/sbin/getty .*tty[0-9]+.*$`)
)

// adaptInittab makes sysvinit shut down on SIGPWR (Debian's powerfail entry
// runs a script that no package ships) and puts the getty on the console
// instead of tty1-6, which a container does not have.
func adaptInittab(rootfs string, _ map[string]string) error {
	path := filepath.Join(rootfs, "etc/inittab")
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("sysvinit: %w", err)
	}
	text := powerfailLine.ReplaceAllString(string(data), "")
	text = ttyGettyLine.ReplaceAllString(text, "")
	text = strings.TrimRight(text, "\n") + `

# lodge: SIGPWR (lodge stop) halts; the console has the getty.
pf::powerfail:/sbin/shutdown -h -t1 now
co:2345:respawn:/sbin/getty --noclear 38400 console
`
	return writeFileMode(path, []byte(text), 0o644)
}

// disableHostOnlyScripts removes the sysvinit boot and shutdown scripts that
// act on the host's hardware or on the root filesystem's superblock, which a
// container may not touch (they fail, and some stop the boot).
func disableHostOnlyScripts(rootfs string, _ map[string]string) error {
	for _, pattern := range []string{"hwclock.sh", "checkroot.sh", "checkfs.sh", "checkroot-bootclean.sh", "umountfs", "umountroot"} {
		links, _ := filepath.Glob(filepath.Join(rootfs, "etc/rc?.d/[SK][0-9][0-9]"+pattern))
		for _, link := range links {
			if err := os.Remove(link); err != nil {
				return err
			}
		}
	}
	return nil
}
