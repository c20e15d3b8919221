package templates

import (
	"fmt"

	"lodge/rootfs"
)

// ConfigureHostname names the system after the container: /etc/hostname and
// /etc/hosts. Every template and image gets it; systemd, sysvinit and busybox
// set the hostname from /etc/hostname at boot (debootstrap leaves the build
// host's name there). Host root writes into a tree an image controls, so
// the files are written without following the image's symlinks out of it.
func ConfigureHostname(root, container string) error {
	hosts := fmt.Sprintf("127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\n", container)
	if err := rootfs.WriteFileInRoot(root, "etc/hostname", []byte(container+"\n"), 0o644); err != nil {
		return err
	}
	return rootfs.WriteFileInRoot(root, "etc/hosts", []byte(hosts), 0o644)
}
