package lxcfs

import "path/filepath"

// CRIU cannot checkpoint a FUSE mount (checkpoint-restore/criu#53, #88),
// and need not: a view holds no state. A checkpoint names each view mount
// external, and a restore binds the name to the file of the server running
// on the destination, which answers for the restored container as soon as
// its state file is written (reads are answered by cgroup, not by mount).
// The pairs are CRIU's ext_mnt entries (rpc.ExtMountMap in go-criu); the
// migrate package passes them on, so this package stays free of CRIU.

// ExternalMount is one CRIU ext_mnt entry.
type ExternalMount struct{ Key, Val string }

// externalKey names a view mount in a checkpoint image.
func externalKey(target string) string { return "lodge-lxcfs:" + target }

// CRIUDumpExternal is the ext_mnt list for a dump of container name: each
// view's mount point in the container, mapped to its name.
func CRIUDumpExternal(name string) []ExternalMount {
	var out []ExternalMount
	for _, m := range Mounts(name) {
		out = append(out, ExternalMount{Key: m[1], Val: externalKey(m[1])})
	}
	return out
}

// CRIURestoreExternal is the ext_mnt list for a restore of container name:
// each view's name, mapped to the host path it is bound from, under the
// mount point mnt of the server on this host (MountPoint).
func CRIURestoreExternal(mnt, name string) []ExternalMount {
	var out []ExternalMount
	for _, m := range Mounts(name) {
		out = append(out, ExternalMount{Key: externalKey(m[1]), Val: filepath.Join(mnt, m[0])})
	}
	return out
}
