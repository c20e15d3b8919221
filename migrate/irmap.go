package migrate

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/fh"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
)

// The paths of a container's inotify and fanotify watches on an overlay
// root, found before a dump and given to CRIU as its irmap cache.
//
// CRIU saves a watch as the watched file's handle, which it must be able to
// open, or else as a path it finds by scanning a few directories (its irmap
// hints: /etc, /var/log, /var/spool, two of /usr/share/dbus-1, ...). An
// overlay mounted in a user namespace, as a container's root on overlay
// storage is, opens no handle: the kernel grants index=on and nfs_export=on
// only to a mounter with CAP_DAC_READ_SEARCH in the initial user namespace
// ("upper fs does not support file handles, falling back to index=off"), and
// without them an overlay's handles cannot be decoded. A stock Debian's
// dbus-daemon watches /usr/share/dbus-1/system.d, in no hint, and its dump
// failed with "fsnotify: Can't dump that handle". CRIU's irmap_scan_paths
// would widen the scan, but they are scanned before the hints, for every
// watch the cache lacks, systemd's on / among them: giving /usr and /var made
// every Debian dump walk both while the container was frozen.
//
// So lodge finds the paths itself, while the container still runs: it reads
// the watches from /proc/PID/fdinfo of every task of the tree, and walks the
// root (one filesystem, no symlink followed) until it has found each watched
// inode. The result goes to the images directory as irmap-cache, the image
// CRIU's own pre-dump writes for the same purpose; the dump loads it,
// checks each entry with a stat and restores the watches by path. A watch
// the walk missed (made during the dump, or on an unlinked file) is left
// to CRIU's own scan, as before.

// overlayfsMagic is OVERLAYFS_SUPER_MAGIC, statfs' f_type of an overlay.
const overlayfsMagic = 0x794c7630

// Image magics (criu/include/magic.h): a service image starts with
// IMG_SERVICE, then its own.
const (
	imgServiceMagic = 0x55105940
	irmapCacheMagic = 0x57004059
)

// irmapWalkLimit bounds the walk: a watched inode never found (an unlinked
// file) must not make every checkpoint read a huge tree.
const irmapWalkLimit = 1 << 20

// devIno is a watched inode: the kernel's encoding of its superblock's
// device (as fdinfo prints it and CRIU compares it) and its number.
type devIno struct {
	dev uint32
	ino uint64
}

// writeIrmapCache writes dir/irmap-cache with the paths of the watches the
// process tree of pid holds on its root filesystem, when that is an
// overlay. It returns how many it wrote.
func writeIrmapCache(dir string, pid int) (int, error) {
	root, err := unix.Open(fmt.Sprintf("/proc/%d/root", pid), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("irmap cache: the root of %d: %w", pid, err)
	}
	defer unix.Close(root)
	var sfs unix.Statfs_t
	var st unix.Stat_t
	if err := unix.Fstatfs(root, &sfs); err != nil {
		return 0, fmt.Errorf("irmap cache: %w", err)
	}
	if err := unix.Fstat(root, &st); err != nil {
		return 0, fmt.Errorf("irmap cache: %w", err)
	}
	if sfs.Type != overlayfsMagic {
		return 0, nil // handles open: CRIU needs no paths
	}
	want := map[devIno]bool{}
	for _, w := range treeWatches("/proc", pid) {
		if w.dev == kernelDev(st.Dev) {
			want[w] = true
		}
	}
	if len(want) == 0 {
		return 0, nil
	}
	found := findInodes(root, want)
	if len(found) == 0 {
		return 0, nil
	}
	return len(found), writeIrmapImage(filepath.Join(dir, "irmap-cache"), found)
}

// kernelDev is a stat st_dev in the kernel's own encoding (MKDEV: major
// above bit 20), the one fdinfo prints.
func kernelDev(dev uint64) uint32 {
	return unix.Major(dev)<<20 | unix.Minor(dev)
}

// treeWatches lists the inotify and fanotify watches of the process tree of
// pid. A task that exits meanwhile is skipped.
func treeWatches(proc string, pid int) []devIno {
	var out []devIno
	seen := map[int]bool{}
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if seen[p] {
			continue
		}
		seen[p] = true
		out = append(out, processWatches(proc, p)...)
		queue = append(queue, children(proc, p)...)
	}
	return out
}

// children are the child processes of pid, from every thread's children
// file.
func children(proc string, pid int) []int {
	tasks, _ := os.ReadDir(fmt.Sprintf("%s/%d/task", proc, pid))
	var out []int
	for _, t := range tasks {
		data, err := os.ReadFile(fmt.Sprintf("%s/%d/task/%s/children", proc, pid, t.Name()))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(data)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// processWatches reads the watches of pid's inotify and fanotify
// descriptors from their fdinfo lines, e.g.
// "inotify wd:1 ino:e043d sdev:3a mask:2c8 ...".
func processWatches(proc string, pid int) []devIno {
	fds, _ := os.ReadDir(fmt.Sprintf("%s/%d/fd", proc, pid))
	var out []devIno
	for _, fd := range fds {
		link, err := os.Readlink(fmt.Sprintf("%s/%d/fd/%s", proc, pid, fd.Name()))
		if err != nil || (link != "anon_inode:inotify" && link != "anon_inode:[fanotify]") {
			continue
		}
		f, err := os.Open(fmt.Sprintf("%s/%d/fdinfo/%s", proc, pid, fd.Name()))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if w, ok := parseWatch(sc.Text()); ok {
				out = append(out, w)
			}
		}
		f.Close()
	}
	return out
}

// parseWatch reads ino and sdev (hex) of one "inotify ..." or "fanotify
// ..." fdinfo line.
func parseWatch(line string) (devIno, bool) {
	kind, rest, _ := strings.Cut(line, " ")
	if kind != "inotify" && kind != "fanotify" {
		return devIno{}, false
	}
	var w devIno
	var haveIno, haveDev bool
	for _, field := range strings.Fields(rest) {
		key, value, _ := strings.Cut(field, ":")
		switch key {
		case "ino":
			n, err := strconv.ParseUint(value, 16, 64)
			w.ino, haveIno = n, err == nil
		case "sdev":
			n, err := strconv.ParseUint(value, 16, 32)
			w.dev, haveDev = uint32(n), err == nil
		}
	}
	return w, haveIno && haveDev
}

// findInodes walks the filesystem of root breadth first (the shallow
// configuration directories daemons watch come early), never leaving it
// and following no symlink, until it has found every inode of want or read
// irmapWalkLimit entries. It returns the paths found, "/"-rooted as CRIU
// writes them; the root itself is "/." (CRIU strips the leading slash).
func findInodes(root int, want map[devIno]bool) map[devIno]string {
	found := map[devIno]string{}
	var st unix.Stat_t
	if err := unix.Fstat(root, &st); err != nil {
		return found
	}
	dev := kernelDev(st.Dev)
	if k := (devIno{dev, st.Ino}); want[k] {
		found[k] = "/."
	}
	queue := []string{"."}
	read := 0
	for len(queue) > 0 && len(found) < len(want) && read < irmapWalkLimit {
		rel := queue[0]
		queue = queue[1:]
		names, dirfd, err := readDirBeneath(root, rel)
		if err != nil {
			continue
		}
		for _, name := range names {
			read++
			var s unix.Stat_t
			if unix.Fstatat(dirfd, name, &s, unix.AT_SYMLINK_NOFOLLOW) != nil || kernelDev(s.Dev) != dev {
				continue // gone, or another filesystem mounted here
			}
			path := filepath.Join(rel, name)
			if k := (devIno{dev, s.Ino}); want[k] {
				if _, dup := found[k]; !dup {
					found[k] = "/" + path
				}
			}
			if s.Mode&unix.S_IFMT == unix.S_IFDIR {
				queue = append(queue, path)
			}
		}
		unix.Close(dirfd)
	}
	return found
}

// readDirBeneath opens rel below root without leaving root's mount or
// following a symlink (the container runs: a directory may have become a
// symlink since it was listed) and lists it. The caller closes the fd.
func readDirBeneath(root int, rel string) ([]string, int, error) {
	fd, err := unix.Openat2(root, rel, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	})
	if err != nil {
		return nil, -1, err
	}
	d, err := unix.Dup(fd) // the listing reads through its own descriptor
	if err != nil {
		unix.Close(fd)
		return nil, -1, err
	}
	f := os.NewFile(uintptr(d), rel)
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		unix.Close(fd)
		return nil, -1, err
	}
	return names, fd, nil
}

// writeIrmapImage writes CRIU's irmap-cache image: the service and irmap
// magics, then each entry as a 32-bit little-endian length and an
// IrmapCacheEntry.
func writeIrmapImage(path string, entries map[devIno]string) error {
	buf := binary.LittleEndian.AppendUint32(nil, imgServiceMagic)
	buf = binary.LittleEndian.AppendUint32(buf, irmapCacheMagic)
	for k, p := range entries {
		msg, err := proto.Marshal(&fh.IrmapCacheEntry{Dev: proto.Uint32(k.dev), Inode: proto.Uint64(k.ino), Path: proto.String(p)})
		if err != nil {
			return fmt.Errorf("irmap cache: %w", err)
		}
		buf = binary.LittleEndian.AppendUint32(buf, uint32(len(msg)))
		buf = append(buf, msg...)
	}
	if err := os.WriteFile(path, buf, 0o600); err != nil {
		return fmt.Errorf("irmap cache: %w", err)
	}
	return nil
}
