package main

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The btrfs ioctls that create subvolumes and snapshots (linux/btrfs.h) and
// their arguments, struct btrfs_ioctl_vol_args and _v2 (4096 bytes each).
const (
	subvolCreate   = 0x5000940e // BTRFS_IOC_SUBVOL_CREATE
	subvolCreateV2 = 0x50009418 // BTRFS_IOC_SUBVOL_CREATE_V2
	snapCreate     = 0x50009401 // BTRFS_IOC_SNAP_CREATE
	snapCreateV2   = 0x50009417 // BTRFS_IOC_SNAP_CREATE_V2
)

type volArgs struct {
	fd   int64
	name [4088]byte
}

type volArgsV2 struct {
	fd      int64
	transid uint64
	flags   uint64
	unused  [4]uint64
	name    [4040]byte
}

// subvolumes tries to make a subvolume or snapshot (of /) in dir with each
// of the four requests, and with BTRFS_IOC_SUBVOL_CREATE's high word set,
// which the kernel drops (ioctl's request is an unsigned int); then an
// unrelated ioctl, FS_IOC_GETFLAGS, on dir. Names are prefix-REQUEST.
func subvolumes(dir, prefix string) {
	d, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		report("open_dir", err)
		return
	}
	root, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		report("open_root", err)
		return
	}
	v1 := func(fd int, name string) unsafe.Pointer {
		a := &volArgs{fd: int64(fd)}
		copy(a.name[:], prefix+name)
		return unsafe.Pointer(a)
	}
	v2 := func(fd int, name string) unsafe.Pointer {
		a := &volArgsV2{fd: int64(fd)}
		copy(a.name[:], prefix+name)
		return unsafe.Pointer(a)
	}
	ioctl := func(req uint64, arg unsafe.Pointer) error {
		return raw(unix.SYS_IOCTL, uintptr(d), uintptr(req), uintptr(arg))
	}
	report("subvol_create", ioctl(subvolCreate, v1(0, "subvol_create")))
	report("subvol_create_high", ioctl(1<<32|subvolCreate, v1(0, "subvol_create_high")))
	report("subvol_create_v2", ioctl(subvolCreateV2, v2(0, "subvol_create_v2")))
	report("snap_create", ioctl(snapCreate, v1(root, "snap_create")))
	report("snap_create_v2", ioctl(snapCreateV2, v2(root, "snap_create_v2")))
	var flags int
	report("getflags", ioctl(unix.FS_IOC_GETFLAGS, unsafe.Pointer(&flags)))
}
