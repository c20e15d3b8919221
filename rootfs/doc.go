// Package rootfs prepares a container's root filesystem and assembles its mount
// tree.
//
// Files on disk keep their natural ids (0..65535). On the host side, OpenTree
// makes a detached, idmapped copy of the root filesystem's mount that shows those
// files as owned by the container's host id range; where a filesystem cannot be
// idmapped, Shift chowns the files once instead (resumably, with progress).
//
// On the container side, Assemble runs in the container's first process, inside
// its new user and mount namespaces, and builds everything init expects: the
// root, /proc and /sys with the usual protections, a minimal /dev with a private
// devpts and /dev/console as a pty, /run, the cgroup filesystems, then
// pivot_root. All of these mounts live only in the container's mount namespace,
// so they vanish with it and nothing is left on the host.
package rootfs
