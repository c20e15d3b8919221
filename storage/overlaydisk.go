package storage

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A disk-limited overlay tree keeps its upper and work directories in an
// ext4 filesystem image of its own, P/disk.img, sized to limits.disk (a
// sparse file): writing past it fails with ENOSPC, and df inside the
// container shows its size, because overlay's statfs reports the upper's
// filesystem. This kernel has no project quotas (docs/storage-overlay.md).
//
// The image is never mounted on the host: whoever needs it (the monitor's
// start, a view, a copy, a snapshot, a usage query) attaches it to a loop
// device (LO_FLAGS_AUTOCLEAR) and mounts it as a detached mount (fsmount),
// reached through /proc/self/fd/N. The loop device and the filesystem live
// exactly as long as some mount of it does (a running container's idmapped
// upper layer, an open view); nothing stays behind on the host, nothing
// leaks into other mount namespaces, and a tree holding an image can be
// renamed or removed like any directory. Two loop devices on one image
// would make two ext4 superblocks of one filesystem (corruption), so a
// user first looks for a loop device already bound to the image and
// mounts that one (same device, same superblock), under a flock on the
// image.

// DiskImage is the file of a disk-limited overlay tree holding its upper
// and work directories.
const DiskImage = "disk.img"

// MinDiskLimit is the smallest limits.disk an overlay tree takes: ext4's
// journal and metadata need a few MiB.
const MinDiskLimit = 16 << 20

// ext4IocResizeFS is EXT4_IOC_RESIZE_FS, _IOW('f', 16, __u64): online grow.
const ext4IocResizeFS = 0x40086610

// diskSize is the size of the tree's disk image, 0 when it has none.
func diskSize(path string) (int64, error) {
	fi, err := os.Stat(filepath.Join(path, DiskImage))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("overlay tree %s: %w", path, err)
	}
	return fi.Size(), nil
}

// OpenUpperDir returns the directory holding the upper and work
// directories of the overlay tree at path: the tree itself, or for a
// disk-limited tree its mounted image (Dir is then /proc/self/fd/N of a
// detached mount, valid until Close; walk Dir+"/", not Dir).
func OpenUpperDir(path string) (*View, error) {
	img := filepath.Join(path, DiskImage)
	if _, err := os.Lstat(img); errors.Is(err, os.ErrNotExist) {
		return &View{Dir: path}, nil
	}
	mnt, err := mountDisk(img)
	if err != nil {
		return nil, fmt.Errorf("overlay tree %s: %w", path, err)
	}
	return &View{Dir: "/proc/self/fd/" + strconv.Itoa(int(mnt.Fd())), mnt: mnt}, nil
}

// mountDisk mounts the ext4 image img as a detached mount, through the
// loop device already bound to it if there is one.
func mountDisk(img string) (*os.File, error) {
	// The lock is taken on a descriptor of its own: a flock belongs to
	// the open file, and the one a loop device is bound to stays open
	// (in the kernel) as long as the device is bound.
	lock, err := os.Open(img)
	if err != nil {
		return nil, fmt.Errorf("open disk image: %w", err)
	}
	defer lock.Close() // and the flock with it
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return nil, fmt.Errorf("lock disk image %s: %w", img, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(lock.Fd()), &st); err != nil {
		return nil, err
	}
	loop, err := findLoop(&st)
	if err != nil {
		return nil, err
	}
	if loop == nil {
		if loop, err = attachLoop(img); err != nil {
			return nil, err
		}
	}
	defer loop.Close() // the mount holds the device; autoclear detaches it after the last
	mnt, err := mountExt4(loop.Name())
	if err != nil {
		return nil, fmt.Errorf("mount disk image %s (%s): %w", img, loop.Name(), err)
	}
	return mnt, nil
}

// findLoop returns the loop device bound to the file st describes, opened,
// or nil. An open descriptor keeps the binding (autoclear waits for the
// last close), so the device cannot be cleared and rebound under us.
func findLoop(st *unix.Stat_t) (*os.File, error) {
	bound, err := filepath.Glob("/sys/block/loop*/loop") // only bound devices have it
	if err != nil {
		return nil, err
	}
	for _, b := range bound {
		dev, err := os.OpenFile("/dev/"+filepath.Base(filepath.Dir(b)), os.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			continue // cleared meanwhile, or no node
		}
		info, err := unix.IoctlLoopGetStatus64(int(dev.Fd()))
		if err == nil && info.Device == st.Dev && info.Inode == st.Ino {
			return dev, nil
		}
		dev.Close()
	}
	return nil, nil
}

// attachLoop binds a free loop device to the image file name with
// autoclear.
func attachLoop(name string) (*os.File, error) {
	img, err := os.OpenFile(name, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open disk image: %w", err)
	}
	defer img.Close() // the device keeps its own reference
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("loop devices: %w", err)
	}
	defer ctl.Close()
	cfg := unix.LoopConfig{Fd: uint32(img.Fd())}
	cfg.Info.Flags = unix.LO_FLAGS_AUTOCLEAR
	copy(cfg.Info.File_name[:len(cfg.Info.File_name)-1], name)
	for range 32 { // another process may take the free device first
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return nil, fmt.Errorf("find a free loop device: %w", err)
		}
		dev, err := os.OpenFile("/dev/loop"+strconv.Itoa(n), os.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("loop device: %w", err)
		}
		err = unix.IoctlLoopConfigure(int(dev.Fd()), &cfg)
		if err == nil {
			return dev, nil
		}
		dev.Close()
		if !errors.Is(err, unix.EBUSY) {
			return nil, fmt.Errorf("bind %s to a loop device: %w", name, err)
		}
	}
	return nil, fmt.Errorf("bind %s to a loop device: every free one was taken meanwhile", name)
}

// loopFitImage makes the loop device as large as its image (after a grow).
func loopFitImage(loop *os.File, size int64) error {
	if loop == nil {
		return nil // not bound: the next binding takes the file's size
	}
	var cur uint64
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, loop.Fd(), unix.BLKGETSIZE64, uintptr(unsafe.Pointer(&cur))); e != 0 {
		return fmt.Errorf("size of %s: %w", loop.Name(), e)
	}
	if int64(cur) == size {
		return nil
	}
	if err := unix.IoctlSetInt(int(loop.Fd()), unix.LOOP_SET_CAPACITY, 0); err != nil {
		return fmt.Errorf("resize %s: %w", loop.Name(), err)
	}
	return nil
}

// mountExt4 mounts the ext4 filesystem on dev as a detached mount. A
// second mount of a device already mounted shares its superblock.
func mountExt4(dev string) (*os.File, error) {
	fs, err := unix.Fsopen("ext4", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fs)
	if err := unix.FsconfigSetString(fs, "source", dev); err != nil {
		return nil, err
	}
	// Space freed inside goes back to the host (holes in the image).
	if err := unix.FsconfigSetFlag(fs, "discard"); err != nil {
		return nil, err
	}
	if err := unix.FsconfigCreate(fs); err != nil {
		return nil, err
	}
	mnt, err := unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_NODEV)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(mnt), "disk "+dev), nil
}

// fsBytes is the size of the ext4 filesystem in the image img, from its
// superblock (as last written back).
func fsBytes(img string) (int64, error) {
	f, err := os.Open(img)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sb := make([]byte, 1024)
	if _, err := f.ReadAt(sb, 1024); err != nil {
		return 0, fmt.Errorf("read the superblock of %s: %w", img, err)
	}
	le := binary.LittleEndian
	if le.Uint16(sb[0x38:]) != 0xef53 {
		return 0, fmt.Errorf("%s holds no ext4 filesystem", img)
	}
	blocks := uint64(le.Uint32(sb[0x4:]))
	if le.Uint32(sb[0x60:])&0x80 != 0 { // INCOMPAT_64BIT
		blocks |= uint64(le.Uint32(sb[0x150:])) << 32
	}
	return int64(blocks << (10 + le.Uint32(sb[0x18:]))), nil
}

// resizeExt4 grows the mounted filesystem to size bytes (online; the
// kernel wants CAP_SYS_RESOURCE).
func resizeExt4(mnt *os.File, size int64) error {
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(mnt.Fd()), &st); err != nil {
		return err
	}
	blocks := uint64(size) / uint64(st.Bsize)
	root, err := unix.Openat(int(mnt.Fd()), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(root)
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(root), ext4IocResizeFS, uintptr(unsafe.Pointer(&blocks))); e != 0 {
		return e
	}
	return nil
}

// makeDisk makes the sparse ext4 image img of size bytes.
func makeDisk(img string, size int64) error {
	f, err := os.OpenFile(img, os.O_RDWR|os.O_CREATE|os.O_EXCL|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("make disk image: %w", err)
	}
	err = f.Truncate(size)
	f.Close()
	if err != nil {
		return fmt.Errorf("make disk image %s: %w", img, err)
	}
	// 4 KiB blocks and a small journal below 1 GiB: mke2fs's "small"
	// profile (1 KiB blocks, an inode per 4 KiB) would eat a tenth of it.
	// The file is new and sparse, so zeroed: nothing to zero or discard.
	args := []string{"-q", "-F", "-t", "ext4", "-b", "4096", "-i", "16384", "-m", "0", "-L", "lodge-upper",
		"-E", "assume_storage_prezeroed=1,nodiscard"}
	if size < 1<<30 {
		args = append(args, "-J", "size=4")
	}
	out, err := exec.Command("mkfs.ext4", append(args, img)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("mkfs.ext4 %s: %w: %s (install e2fsprogs)", img, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// limitTree moves the tree at tmp (made by makeOverlayTree, empty upper
// and work) onto a new disk image of size bytes. With fill nil the image
// gets an empty upper of tmp's upper's owner and mode; else fill makes
// DIR/upper (DIR being the mounted image).
func limitTree(tmp string, size int64, fill func(dir string) error) error {
	if err := makeDisk(filepath.Join(tmp, DiskImage), size); err != nil {
		return err
	}
	disk, err := OpenUpperDir(tmp)
	if err != nil {
		return err
	}
	defer disk.Close()
	if err := os.Mkdir(filepath.Join(disk.Dir, "work"), 0o755); err != nil {
		return fmt.Errorf("make overlay tree: %w", err)
	}
	if fill == nil {
		fill = func(dir string) error {
			var st unix.Stat_t
			if err := unix.Lstat(filepath.Join(tmp, "upper"), &st); err != nil {
				return err
			}
			upper := filepath.Join(dir, "upper")
			if err := os.Mkdir(upper, 0o755); err != nil {
				return err
			}
			return setMetaPath(filepath.Join(tmp, "upper"), upper, &st)
		}
	}
	if err := fill(disk.Dir); err != nil {
		return err
	}
	if err := syncFS(disk.Dir + "/"); err != nil {
		return err
	}
	for _, d := range []string{"upper", "work"} {
		if err := os.Remove(filepath.Join(tmp, d)); err != nil {
			return fmt.Errorf("make overlay tree: %w", err)
		}
	}
	return syncFS(tmp)
}

// makeLayerTree is makeOverlayTree, on a disk image of size bytes when size > 0.
func makeLayerTree(path string, t Tree, rootMeta *unix.Stat_t, size int64) error {
	if err := makeOverlayTree(path, t, rootMeta); err != nil {
		return err
	}
	if size == 0 {
		return nil
	}
	return limitTree(path, size, nil)
}

// upperMeta is the owner and mode of the tree's upper directory (those of
// the container's root directory).
func upperMeta(path string) (unix.Stat_t, error) {
	var st unix.Stat_t
	u, err := OpenUpperDir(path)
	if err != nil {
		return st, err
	}
	defer u.Close()
	if err := unix.Lstat(filepath.Join(u.Dir, "upper"), &st); err != nil {
		return st, fmt.Errorf("overlay tree %s: %w", path, err)
	}
	return st, nil
}

// SetQuota implements Backend: limits.disk puts the tree's upper and work
// directories on an ext4 image of that size (see DiskImage). The container
// must be stopped (SetQuotaRunning is for running ones), and the caller
// holds its lock. A change (adding, growing, shrinking or removing a
// limit) builds a new tree beside path with the upper copied over
// (whiteouts, xattrs, owners kept), exchanges the two with one renameat2
// and removes the old one: a kill -9 at any point leaves the old or the
// new tree at path, and the other under a TempPrefix name, which
// RemoveStale removes. The same limit again is a no-op (start sets it).
func (o Overlay) SetQuota(ctx context.Context, path string, bytes int64) error {
	if bytes != 0 && bytes < MinDiskLimit {
		return &QuotaError{Backend: OverlayName, Path: path, Reason: fmt.Sprintf(
			"%d bytes is below the smallest limit overlay takes (%d MiB: the limit is the size of an ext4 filesystem, whose journal and metadata take a few MiB); choose a larger one",
			bytes, MinDiskLimit>>20)}
	}
	unlock, err := o.lock()
	if err != nil {
		return err
	}
	defer unlock()
	cur, err := diskSize(path)
	if err != nil {
		return err
	}
	if bytes == cur {
		if cur == 0 {
			return nil
		}
		// Done, unless an online grow was killed after it grew the
		// image and before the filesystem: then rebuild at that size.
		if fs, err := fsBytes(filepath.Join(path, DiskImage)); err != nil || fs >= cur {
			return err
		}
	}
	return o.rebuildUpper(ctx, path, bytes)
}

// ErrStopFirst is what a limit change that needs a stopped container
// matches with errors.Is.
var ErrStopFirst = errors.New("the container must be stopped")

// SetQuotaRunning is SetQuota for the tree of a running container: a
// limit can only grow in place (online, which needs CAP_SYS_RESOURCE)
// while the container's overlay uses the upper; any other change moves the
// upper to a new filesystem and is refused (ErrStopFirst).
func (o Overlay) SetQuotaRunning(ctx context.Context, path string, bytes int64) error {
	cur, err := diskSize(path)
	if err != nil {
		return err
	}
	if bytes == cur {
		return nil
	}
	var why string
	switch {
	case cur > 0 && bytes > cur:
		if haveCap(unix.CAP_SYS_RESOURCE) {
			unlock, err := o.lock()
			if err != nil {
				return err
			}
			defer unlock()
			return growOnline(path, bytes)
		}
		why = "growing its filesystem online needs CAP_SYS_RESOURCE, which this lodge lacks (stopped, the upper is copied to a new image instead)"
	case cur == 0:
		why = "adding a disk limit moves its upper layer onto a filesystem image of the limit's size"
	case bytes == 0:
		why = "removing its disk limit moves its upper layer off its filesystem image"
	default:
		why = fmt.Sprintf("a disk limit only grows while it runs (now %d MiB), and shrinking moves its upper layer onto a new filesystem image", cur>>20)
	}
	return fmt.Errorf("the container is running, and %s: stop it first, then set the limit: %w", why, ErrStopFirst)
}

// growOnline grows the image of a running container's tree to size bytes,
// then its loop device and mounted filesystem (EXT4_IOC_RESIZE_FS,
// journaled). Killed between the two, the image is larger than the
// filesystem: the next SetQuota (start) rebuilds the tree at the image's
// size.
func growOnline(path string, size int64) error {
	img := filepath.Join(path, DiskImage)
	if err := os.Truncate(img, size); err != nil {
		return fmt.Errorf("grow disk image %s: %w", img, err)
	}
	stepHook("quota-grown")
	f, err := os.OpenFile(img, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return err
	}
	loop, err := findLoop(&st)
	f.Close()
	if err != nil {
		return err
	}
	if loop != nil {
		defer loop.Close()
	}
	if err := loopFitImage(loop, size); err != nil {
		return err
	}
	u, err := OpenUpperDir(path)
	if err != nil {
		return err
	}
	defer u.Close()
	if err := resizeExt4(u.mnt, size); err != nil {
		return fmt.Errorf("grow the filesystem of %s online: %w", img, err)
	}
	return nil
}

// haveCap says whether this process has capability c in effect.
func haveCap(c int) bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	return data[c/32].Effective&(1<<(c%32)) != 0
}

// rebuildUpper moves the tree's upper (on an image or not) to a new tree
// on an image of size bytes (none when 0); see SetQuota.
func (o Overlay) rebuildUpper(ctx context.Context, path string, size int64) error {
	t, err := ReadTree(path)
	if err != nil {
		return err
	}
	old, err := OpenUpperDir(path)
	if err != nil {
		return err
	}
	defer old.Close()
	upper := filepath.Join(old.Dir, "upper")
	var st unix.Stat_t
	if err := unix.Lstat(upper, &st); err != nil {
		return fmt.Errorf("overlay tree %s: %w", path, err)
	}
	tmp := tempPath(path, "disk")
	if err := makeOverlayTree(tmp, t, &st); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if size > 0 {
		err = limitTree(tmp, size, func(dir string) error { return fillUpper(ctx, path, upper, dir, size) })
	} else {
		newUpper := filepath.Join(tmp, "upper")
		if err = os.Remove(newUpper); err == nil {
			err = copyInto(ctx, upper, newUpper, Options{}, false)
		}
	}
	if err != nil {
		os.RemoveAll(tmp)
		return err
	}
	stepHook("quota-built")
	if err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, path, unix.RENAME_EXCHANGE); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("swap in the overlay tree of the new disk limit at %s: %w", path, err)
	}
	stepHook("quota-swapped")
	old.Close() // the old image's filesystem, before its file goes
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("disk limit set, but removing the old tree %s: %w", tmp, err)
	}
	return nil
}

// fillUpper copies the upper layer upper of the tree at path into the
// mounted new image dir of size bytes, refusing when it cannot hold it.
func fillUpper(ctx context.Context, path, upper, dir string, size int64) error {
	used, err := Dir{}.Usage(ctx, upper)
	if err != nil {
		return err
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(dir+"/", &fs); err != nil {
		return err
	}
	tooSmall := func() error {
		return &QuotaError{Backend: OverlayName, Path: path, Reason: fmt.Sprintf(
			"the container's own files take %s, more than a limit of %s leaves for files (%s after the filesystem's metadata); "+
				"delete files inside first, or choose a larger limit",
			mib(used.Bytes), mib(size), mib(int64(fs.Bavail)*fs.Bsize))}
	}
	if used.Bytes > int64(fs.Bavail)*fs.Bsize || used.Inodes > int64(fs.Ffree) {
		return tooSmall()
	}
	err = copyInto(ctx, upper, filepath.Join(dir, "upper"), Options{}, false)
	if errors.Is(err, unix.ENOSPC) {
		return tooSmall()
	}
	return err
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
