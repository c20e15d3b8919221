// Package rootfs prepares a container's root filesystem and assembles its mount
// tree.
//
// Files on disk keep their natural ids (0..65535). On the host side, OpenTree
// makes a detached, idmapped copy of the root filesystem's mount that shows those
// files as owned by the container's host id range; where a filesystem cannot be
// idmapped, Shift chowns the files once instead (resumably, with progress).
//
// The mount tree is built in two parts. What the container must not undo (the
// root with nodev, /proc with its masks and read-only binds, read-only /sys,
// the cgroup filesystems) is built by a Stage, a monitor thread in a private
// mount namespace owned by the host's user namespace, from the kernel
// filesystems the container's first process creates (NewKernelFS), and reaches
// the container's mount namespace locked (see Stage). Assemble then runs in
// the container's first process and adds what is the container's own: /run, a
// minimal /dev with a private devpts and /dev/console as a pty, then
// pivot_root. Every mount target is opened inside the tree without following
// symlinks, and every mount is made by descriptor (mountfd.go). All of these
// mounts live only in the container's (and the stage's) mount namespace, so
// they vanish with it and nothing is left on the host.
package rootfs
