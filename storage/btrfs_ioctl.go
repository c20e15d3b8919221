package storage

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The btrfs backend talks to the kernel through the btrfs ioctls
// (linux/btrfs.h) rather than running btrfs-progs' `btrfs` command: an
// ioctl is one system call where the command is a fork and exec on top of
// it (a snapshot's cost is its transaction commit, ~15 ms on this test
// machine's loop device; the command would add its start-up to every
// create, clone and snapshot), its errors are errnos a caller
// can branch on (ENOTEMPTY for nested subvolumes, EDQUOT) instead of
// messages to parse, and its arguments are stable kernel ABI where the
// command's output changes between btrfs-progs versions. The tests use the
// command only to cross-check.

// Ioctl requests: _IOW/_IOR/_IOWR(BTRFS_IOCTL_MAGIC 0x94, nr, size).
const (
	btrfsIocSubvolCreate   = 0x5000940e // _IOW(14, btrfs_ioctl_vol_args)
	btrfsIocSnapDestroy    = 0x5000940f // _IOW(15, btrfs_ioctl_vol_args)
	btrfsIocInoLookup      = 0xd0009412 // _IOWR(18, btrfs_ioctl_ino_lookup_args)
	btrfsIocSnapCreateV2   = 0x50009417 // _IOW(23, btrfs_ioctl_vol_args_v2)
	btrfsIocSubvolGetflags = 0x80089419 // _IOR(25, u64)
	btrfsIocSubvolSetflags = 0x4008941a // _IOW(26, u64)
	btrfsIocFsInfo         = 0x8400941f // _IOR(31, btrfs_ioctl_fs_info_args)
	btrfsIocQuotaCtl       = 0xc0109428 // _IOWR(40, btrfs_ioctl_quota_ctl_args)
	btrfsIocQgroupLimit    = 0x8030942b // _IOR(43, btrfs_ioctl_qgroup_limit_args)
	btrfsIocQuotaRescanW   = 0x0000942e // _IO(46): wait for a quota rescan

	btrfsSubvolRdonly     = 1 << 1
	btrfsQuotaCtlEnable   = 1
	btrfsQgroupLimitRfer  = 1 << 0
	btrfsQgroupLimitClear = ^uint64(0) // max_rfer value that removes the limit
	// btrfsFirstFreeObjectid is the inode number of every subvolume's root
	// directory: a directory with it (on btrfs) is a subvolume.
	btrfsFirstFreeObjectid = 256
)

// struct btrfs_ioctl_vol_args
type btrfsVolArgs struct {
	fd   int64
	name [4088]byte
}

// struct btrfs_ioctl_vol_args_v2
type btrfsVolArgsV2 struct {
	fd      int64
	transid uint64
	flags   uint64
	unused  [4]uint64
	name    [4040]byte
}

// struct btrfs_ioctl_ino_lookup_args
type btrfsInoLookupArgs struct {
	treeid, objectid uint64
	name             [4080]byte
}

// struct btrfs_ioctl_fs_info_args (only the part read here; the rest is room)
type btrfsFsInfoArgs struct {
	maxID, numDevices uint64
	fsid              [16]byte
	rest              [1024 - 32]byte
}

// struct btrfs_ioctl_quota_ctl_args
type btrfsQuotaCtlArgs struct{ cmd, status uint64 }

// struct btrfs_ioctl_qgroup_limit_args
type btrfsQgroupLimitArgs struct {
	qgroupid                                  uint64
	flags, maxRfer, maxExcl, rsvRfer, rsvExcl uint64
}

func btrfsIoctl(fd int, req uintptr, arg unsafe.Pointer) error {
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg)); errno != 0 {
		return errno
	}
	return nil
}

// openDir opens path (a directory) for ioctls.
func openDir(path string) (int, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return fd, nil
}

// withParent opens path's parent directory and calls fn with it and the
// last path element, which the name-taking ioctls want.
func withParent(path string, fn func(parent int, name string) error) error {
	name := filepath.Base(path)
	if len(name) > 255 {
		return &os.PathError{Op: "btrfs", Path: path, Err: unix.ENAMETOOLONG}
	}
	fd, err := openDir(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return fn(fd, name)
}

// createSubvolume makes an empty subvolume at path.
func createSubvolume(path string) error {
	return withParent(path, func(parent int, name string) error {
		var args btrfsVolArgs
		copy(args.name[:], name)
		if err := btrfsIoctl(parent, btrfsIocSubvolCreate, unsafe.Pointer(&args)); err != nil {
			return &os.PathError{Op: "create btrfs subvolume", Path: path, Err: err}
		}
		return nil
	})
}

// snapshotSubvolume makes dst a snapshot of the subvolume src: O(1), the
// two share every block until one of them writes. The kernel flushes src's
// dirty data first, so the snapshot has everything written before the call.
func snapshotSubvolume(src, dst string, readOnly bool) error {
	sfd, err := openDir(src)
	if err != nil {
		return err
	}
	defer unix.Close(sfd)
	return withParent(dst, func(parent int, name string) error {
		args := btrfsVolArgsV2{fd: int64(sfd)}
		if readOnly {
			args.flags = btrfsSubvolRdonly
		}
		copy(args.name[:], name)
		if err := btrfsIoctl(parent, btrfsIocSnapCreateV2, unsafe.Pointer(&args)); err != nil {
			if errors.Is(err, unix.EXDEV) {
				err = fmt.Errorf("%w (source and snapshot must be on the same btrfs filesystem)", err)
			}
			if errors.Is(err, unix.EINVAL) && !isSubvolume(src) {
				err = fmt.Errorf("%w (%s is not a btrfs subvolume: was it made by another storage backend?)", err, src)
			}
			return fmt.Errorf("btrfs snapshot of %s at %s: %w", src, dst, err)
		}
		return nil
	})
}

// destroySubvolume deletes the subvolume at path (ENOTEMPTY while it holds
// other subvolumes). The kernel frees its blocks in the background.
func destroySubvolume(path string) error {
	return withParent(path, func(parent int, name string) error {
		var args btrfsVolArgs
		copy(args.name[:], name)
		if err := btrfsIoctl(parent, btrfsIocSnapDestroy, unsafe.Pointer(&args)); err != nil {
			return &os.PathError{Op: "delete btrfs subvolume", Path: path, Err: err}
		}
		return nil
	})
}

// setReadOnly sets or clears a subvolume's read-only flag.
func setReadOnly(path string, readOnly bool) error {
	fd, err := openDir(path)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var flags uint64
	if err := btrfsIoctl(fd, btrfsIocSubvolGetflags, unsafe.Pointer(&flags)); err != nil {
		return &os.PathError{Op: "get btrfs subvolume flags", Path: path, Err: err}
	}
	if readOnly {
		flags |= btrfsSubvolRdonly
	} else {
		flags &^= btrfsSubvolRdonly
	}
	if err := btrfsIoctl(fd, btrfsIocSubvolSetflags, unsafe.Pointer(&flags)); err != nil {
		return &os.PathError{Op: "set btrfs subvolume flags", Path: path, Err: err}
	}
	return nil
}

// isSubvolume says whether path is the root directory of a btrfs subvolume
// (false when it does not exist or is anything else).
func isSubvolume(path string) bool {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Ino != btrfsFirstFreeObjectid {
		return false
	}
	return onBtrfs(path)
}

// onBtrfs says whether path is on a btrfs filesystem.
func onBtrfs(path string) bool {
	var fs unix.Statfs_t
	return unix.Statfs(path, &fs) == nil && fs.Type == unix.BTRFS_SUPER_MAGIC
}

// subvolumeID returns the id of the subvolume path is in (its level-0
// qgroup is 0/id).
func subvolumeID(path string) (uint64, error) {
	fd, err := openDir(path)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	args := btrfsInoLookupArgs{objectid: btrfsFirstFreeObjectid}
	if err := btrfsIoctl(fd, btrfsIocInoLookup, unsafe.Pointer(&args)); err != nil {
		return 0, &os.PathError{Op: "look up btrfs subvolume id", Path: path, Err: err}
	}
	return args.treeid, nil
}

// fsUUID returns the id of the btrfs filesystem path is on, as the kernel
// names it under /sys/fs/btrfs.
func fsUUID(path string) (string, error) {
	fd, err := openDir(path)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	var args btrfsFsInfoArgs
	if err := btrfsIoctl(fd, btrfsIocFsInfo, unsafe.Pointer(&args)); err != nil {
		return "", &os.PathError{Op: "btrfs filesystem info", Path: path, Err: err}
	}
	h := hex.EncodeToString(args.fsid[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], nil
}

// enableQuota turns qgroup accounting on for the filesystem path is on
// (nothing when it is on already) and waits for the rescan that counts
// what is already there, so that the limits set next see true numbers.
func enableQuota(path string) error {
	fd, err := openDir(path)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	args := btrfsQuotaCtlArgs{cmd: btrfsQuotaCtlEnable}
	if err := btrfsIoctl(fd, btrfsIocQuotaCtl, unsafe.Pointer(&args)); err != nil {
		return fmt.Errorf("enable btrfs quotas on the filesystem holding %s: %w", path, err)
	}
	if err := btrfsIoctl(fd, btrfsIocQuotaRescanW, nil); err != nil {
		return fmt.Errorf("wait for the btrfs quota rescan of the filesystem holding %s: %w", path, err)
	}
	return nil
}

// limitQgroup sets the referenced-bytes limit of the qgroup of the
// subvolume at path (btrfsQgroupLimitClear removes it).
func limitQgroup(path string, bytes uint64) error {
	fd, err := openDir(path)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	// qgroupid 0: the kernel takes the subvolume fd is in (0/its id).
	args := btrfsQgroupLimitArgs{flags: btrfsQgroupLimitRfer, maxRfer: bytes}
	if err := btrfsIoctl(fd, btrfsIocQgroupLimit, unsafe.Pointer(&args)); err != nil {
		return fmt.Errorf("set the btrfs qgroup limit of %s: %w", path, err)
	}
	return nil
}

// qgroup is what /sys/fs/btrfs/FSID/qgroups/0_ID says about a subvolume.
type qgroup struct {
	referenced, exclusive int64
	maxReferenced         int64 // 0: no limit
	// consistent is false while btrfs knows its counts are wrong (it
	// needs a rescan): the limit still holds, the numbers do not.
	consistent bool
}

// readQgroup reads the qgroup of the subvolume at path. ok is false when
// it has none: quotas are off on its filesystem, or the kernel has no
// sysfs qgroup files (before 5.9).
func readQgroup(path string) (q qgroup, ok bool, err error) {
	uuid, err := fsUUID(path)
	if err != nil {
		return qgroup{}, false, err
	}
	dir := filepath.Join("/sys/fs/btrfs", uuid, "qgroups")
	id, err := subvolumeID(path)
	if err != nil {
		return qgroup{}, false, err
	}
	g := filepath.Join(dir, fmt.Sprintf("0_%d", id))
	for _, f := range []struct {
		name string
		to   *int64
	}{{"referenced", &q.referenced}, {"exclusive", &q.exclusive}, {"max_referenced", &q.maxReferenced}} {
		v, err := os.ReadFile(filepath.Join(g, f.name))
		if errors.Is(err, os.ErrNotExist) {
			return qgroup{}, false, nil
		}
		if err != nil {
			return qgroup{}, false, err
		}
		if _, err := fmt.Sscan(string(v), f.to); err != nil {
			return qgroup{}, false, fmt.Errorf("%s: %w", filepath.Join(g, f.name), err)
		}
	}
	v, err := os.ReadFile(filepath.Join(dir, "inconsistent"))
	q.consistent = err == nil && string(bytes.TrimSpace(v)) == "0"
	return q, true, nil
}

// quotaEnabled says whether qgroup accounting is on for path's filesystem.
func quotaEnabled(path string) bool {
	uuid, err := fsUUID(path)
	if err != nil {
		return false
	}
	_, err = os.Stat(filepath.Join("/sys/fs/btrfs", uuid, "qgroups"))
	return err == nil
}
