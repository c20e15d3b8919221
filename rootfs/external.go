package rootfs

import (
	"os"
	"path"
)

// External is a mount of the container's tree whose source lies outside
// the container's own filesystems: a host device node, a /dev/null over a
// /proc file, the boot id, the console. CRIU cannot dump such a mount and
// must be told on dump that it is external (by its key), and on restore
// what to bind in its place. The list comes from the same tables the tree
// is assembled from (deviceNodes, procMaskedFiles, bindBootID, the
// console), so that a new bind in the tree cannot be forgotten here
// without a test noticing (external_test.go). The /proc and /sys views
// are lxcfs's (lxcfs.CRIUDumpExternal).
type External struct {
	Target string // the mount point inside the container, e.g. /dev/null
	Source string // what a restore binds there; "" where the caller supplies it (Console, BootID)
}

// Targets of the externals whose source the caller supplies on restore.
const (
	ConsoleTarget = "/dev/console"
	BootIDTarget  = "/proc/sys/kernel/random/boot_id"
)

// Key is the external's name in a checkpoint image.
func (e External) Key() string { return "lodge:" + e.Target }

// ExternalMounts lists the container's external mounts (views aside). A
// /proc file is masked only where the kernel has it, as maskFile does;
// procDir is the /proc to ask (the host's: it is the same kernel).
func ExternalMounts(procDir string) []External {
	var out []External
	for _, name := range deviceNodes {
		out = append(out, External{Target: "/dev/" + name, Source: "/dev/" + name})
	}
	for _, name := range procMaskedFiles {
		if _, err := os.Lstat(path.Join(procDir, name)); err == nil {
			out = append(out, External{Target: "/proc/" + name, Source: "/dev/null"})
		}
	}
	return append(out, External{Target: BootIDTarget}, External{Target: ConsoleTarget})
}
