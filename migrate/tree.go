package migrate

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// A tree stream carries a directory tree from one host to another as a tar
// stream (archive/tar, PAX): every entry with its numeric owner, mode,
// modification time and extended attributes exactly as on disk (overlay's
// user.overlay.* and whiteouts, file capabilities, ACLs), hard links as
// links. A migration sends a container's tree twice: once whole while the
// container runs (SendTree with a nil previous state), and once, frozen,
// only what changed since (SendTree with the first pass's TreeState): the
// entries whose inode, size, mode or change time differ, every entry changed
// since the first pass began, and the names of those gone
// (deleteRecord). ReceiveTree applies either to a directory.

// deleteRecord marks an entry of a delta whose path is to be removed.
const deleteRecord = "LODGE.delete"

// changeSlack covers the kernel's coarse change times (a jiffy): an entry
// changed just after the first pass read it may keep the same ctime, so a
// delta sends every entry changed since slightly before the pass began.
const changeSlack = 100 * time.Millisecond

// FileState is what a pass saw of one entry.
type FileState struct {
	Ino   uint64
	Mode  uint32
	Size  int64
	Ctime int64 // ns
}

// TreeState is what a pass sent: each entry's state by its relative path,
// and when the pass began.
type TreeState struct {
	Began   time.Time
	Entries map[string]FileState
}

// TreeStats counts what a pass sent.
type TreeStats struct {
	Entries int64 // entries sent (files, directories, links, devices)
	Deleted int64 // deletions sent
	Bytes   int64 // file data bytes
}

// SendTree writes the tree at dir to w as a tar stream: everything if prev
// is nil, else what changed since prev (see above). skip, if set, leaves
// out an entry by its relative path (a directory with everything below).
// It returns the state for the next pass.
func SendTree(ctx context.Context, w io.Writer, dir string, prev *TreeState, skip func(rel string) bool) (*TreeState, TreeStats, error) {
	var stats TreeStats
	next := &TreeState{Began: time.Now(), Entries: map[string]FileState{}}
	tw := tar.NewWriter(w)
	type entry struct {
		rel string
		st  unix.Stat_t
	}
	var entries []entry
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p != dir {
			return nil // gone meanwhile (a running source)
		}
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if rel != "." && skip != nil && skip(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			if errors.Is(err, unix.ENOENT) { // gone meanwhile (a running source)
				return nil
			}
			return err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFSOCK {
			return nil // sockets are made by their programs, not copied
		}
		entries = append(entries, entry{rel, st})
		next.Entries[rel] = FileState{Ino: st.Ino, Mode: st.Mode, Size: st.Size, Ctime: st.Ctim.Nano()}
		return nil
	})
	if err != nil {
		return nil, stats, fmt.Errorf("send %s: %w", dir, err)
	}
	if prev != nil {
		// Deletions first, deepest first: a path may come back below as
		// another kind of entry.
		var gone []string
		for rel := range prev.Entries {
			if _, ok := next.Entries[rel]; !ok {
				gone = append(gone, rel)
			}
		}
		sort.Sort(sort.Reverse(sort.StringSlice(gone)))
		for _, rel := range gone {
			hdr := &tar.Header{Typeflag: tar.TypeReg, Name: rel, Format: tar.FormatPAX, PAXRecords: map[string]string{deleteRecord: "1"}}
			if err := tw.WriteHeader(hdr); err != nil {
				return nil, stats, err
			}
			stats.Deleted++
		}
	}
	since := int64(0)
	if prev != nil {
		since = prev.Began.Add(-changeSlack).UnixNano()
	}
	firstPath := map[uint64]string{} // inode -> the path it was sent (or is, unchanged) under
	if prev != nil {
		for rel, fs := range prev.Entries {
			if cur, ok := next.Entries[rel]; ok && cur.Ino == fs.Ino && fs.Mode&unix.S_IFMT == unix.S_IFREG {
				if old, ok := firstPath[fs.Ino]; !ok || rel < old {
					firstPath[fs.Ino] = rel
				}
			}
		}
	}
	for _, e := range entries {
		if prev != nil {
			old, seen := prev.Entries[e.rel]
			cur := next.Entries[e.rel]
			if seen && old == cur && cur.Ctime < since {
				continue // unchanged since the first pass
			}
		}
		n, err := sendEntry(tw, dir, e.rel, &e.st, firstPath)
		if errors.Is(err, unix.ENOENT) {
			// Gone since the walk (a running source): not sent, and a
			// delta sends its deletion or whatever takes its name.
			delete(next.Entries, e.rel)
			continue
		}
		if err != nil {
			return nil, stats, fmt.Errorf("send %s: %w", filepath.Join(dir, e.rel), err)
		}
		stats.Entries++
		stats.Bytes += n
	}
	if err := tw.Close(); err != nil {
		return nil, stats, err
	}
	return next, stats, nil
}

// sendEntry writes one entry; it returns the file data bytes written.
func sendEntry(tw *tar.Writer, dir, rel string, st *unix.Stat_t, firstPath map[uint64]string) (int64, error) {
	p := filepath.Join(dir, rel)
	name := filepath.ToSlash(rel)
	hdr := &tar.Header{
		Name: name, Mode: int64(st.Mode & 0o7777), Uid: int(st.Uid), Gid: int(st.Gid),
		ModTime: time.Unix(st.Mtim.Unix()), AccessTime: time.Unix(st.Atim.Unix()),
		Format: tar.FormatPAX, PAXRecords: map[string]string{},
	}
	xattrs, err := readXattrs(p)
	if err != nil {
		return 0, err
	}
	for k, v := range xattrs {
		hdr.PAXRecords["SCHILY.xattr."+k] = v
	}
	var file *os.File
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		hdr.Typeflag = tar.TypeDir
	case unix.S_IFLNK:
		hdr.Typeflag = tar.TypeSymlink
		if hdr.Linkname, err = os.Readlink(p); err != nil {
			return 0, err
		}
	case unix.S_IFCHR, unix.S_IFBLK:
		hdr.Typeflag = tar.TypeChar
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	case unix.S_IFREG:
		if first, ok := firstPath[st.Ino]; ok && st.Nlink > 1 && first != rel {
			hdr.Typeflag, hdr.Linkname = tar.TypeLink, first
			break
		}
		if st.Nlink > 1 {
			firstPath[st.Ino] = rel
		}
		hdr.Typeflag, hdr.Size = tar.TypeReg, st.Size
		if file, err = os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NOATIME, 0); errors.Is(err, unix.EPERM) {
			file, err = os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW, 0)
		}
		if err != nil {
			return 0, err
		}
		defer file.Close()
	default:
		return 0, nil
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return 0, err
	}
	if file == nil {
		return 0, nil
	}
	// The file may change size while a running container writes it: send
	// the size the header says (padded with zeros if it shrank); the
	// frozen pass sends it again, as its change time moved.
	n, err := io.CopyN(tw, file, hdr.Size)
	if errors.Is(err, io.EOF) {
		_, err = io.CopyN(tw, zeros{}, hdr.Size-n)
	}
	return hdr.Size, err
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// readXattrs lists an entry's extended attributes without following it.
func readXattrs(p string) (map[string]string, error) {
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(p, buf)
	if errors.Is(err, unix.ERANGE) {
		if n, err = unix.Llistxattr(p, nil); err == nil {
			buf = make([]byte, n)
			n, err = unix.Llistxattr(p, buf)
		}
	}
	if errors.Is(err, unix.ENOTSUP) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list xattrs of %s: %w", p, err)
	}
	out := map[string]string{}
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if name == "" {
			continue
		}
		val := make([]byte, 256)
		vn, err := unix.Lgetxattr(p, name, val)
		if errors.Is(err, unix.ERANGE) {
			if vn, err = unix.Lgetxattr(p, name, nil); err == nil {
				val = make([]byte, vn)
				vn, err = unix.Lgetxattr(p, name, val)
			}
		}
		if errors.Is(err, unix.ENODATA) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("xattr %s of %s: %w", name, p, err)
		}
		out[name] = string(val[:vn])
	}
	return out, nil
}

// ReceiveTree applies a tree stream (SendTree's) to dir, which must exist.
// Entries are made below dir only: a parent that is not a directory of
// the tree (a symlink) is refused. Directories get their times last.
func ReceiveTree(ctx context.Context, r io.Reader, dir string) (TreeStats, error) {
	var stats TreeStats
	root, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return stats, fmt.Errorf("receive into %s: %w", dir, err)
	}
	defer root.Close()
	tr := tar.NewReader(r)
	type dirTimes struct {
		rel string
		hdr *tar.Header
	}
	var dirs []dirTimes
	for {
		if err := ctx.Err(); err != nil {
			return stats, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return stats, fmt.Errorf("receive into %s: %w", dir, err)
		}
		rel := path.Clean(hdr.Name)
		if rel == ".." || strings.HasPrefix(rel, "../") || path.IsAbs(rel) {
			return stats, fmt.Errorf("receive into %s: entry %q is outside the tree", dir, hdr.Name)
		}
		if rel == "." {
			if hdr.Typeflag != tar.TypeDir {
				return stats, fmt.Errorf("receive into %s: the tree's top is not a directory", dir)
			}
			if err := setMeta(int(root.Fd()), "", hdr, false); err != nil {
				return stats, err
			}
			dirs = append(dirs, dirTimes{rel, hdr})
			continue
		}
		parent, err := openParent(int(root.Fd()), rel)
		if err != nil {
			return stats, fmt.Errorf("receive %s into %s: %w", rel, dir, err)
		}
		base := path.Base(rel)
		if hdr.PAXRecords[deleteRecord] != "" {
			err = removeAt(parent, base)
			unix.Close(parent)
			if err != nil {
				return stats, fmt.Errorf("receive: remove %s in %s: %w", rel, dir, err)
			}
			stats.Deleted++
			continue
		}
		n, err := makeEntry(int(root.Fd()), parent, base, hdr, tr)
		if err == nil && hdr.Typeflag == tar.TypeDir {
			dirs = append(dirs, dirTimes{rel, hdr})
		}
		unix.Close(parent)
		if err != nil {
			return stats, fmt.Errorf("receive %s into %s: %w", rel, dir, err)
		}
		stats.Entries++
		stats.Bytes += n
	}
	// Deepest first, so that setting a directory's times does not move its
	// parent's.
	sort.Slice(dirs, func(i, j int) bool { return dirs[i].rel > dirs[j].rel })
	for _, d := range dirs {
		if d.rel == "." {
			if err := setTimes(int(root.Fd()), "", d.hdr); err != nil {
				return stats, fmt.Errorf("receive: times of %s: %w", dir, err)
			}
			continue
		}
		parent, err := openParent(int(root.Fd()), d.rel)
		if err == nil {
			err = setTimes(parent, path.Base(d.rel), d.hdr)
			unix.Close(parent)
		}
		if err != nil {
			return stats, fmt.Errorf("receive: times of %s: %w", d.rel, err)
		}
	}
	return stats, nil
}

func emptyPathFlag(base string) int {
	if base == "" {
		return unix.AT_EMPTY_PATH
	}
	return 0
}

// openParent opens the directory holding rel below root, refusing symlinks
// on the way.
func openParent(root int, rel string) (int, error) {
	parent := path.Dir(rel)
	return unix.Openat2(root, parent, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	})
}

// removeAt removes base in directory fd, with everything below it.
func removeAt(fd int, base string) error {
	err := unix.Unlinkat(fd, base, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) {
		return err
	}
	return os.RemoveAll(fmt.Sprintf("/proc/self/fd/%d/%s", fd, base))
}

// makeEntry makes entry base in directory parent from hdr (and the data
// that follows it in tr); it returns the data bytes.
func makeEntry(root, parent int, base string, hdr *tar.Header, tr io.Reader) (int64, error) {
	var existing unix.Stat_t
	exists := unix.Fstatat(parent, base, &existing, unix.AT_SYMLINK_NOFOLLOW) == nil
	if exists && !(hdr.Typeflag == tar.TypeDir && existing.Mode&unix.S_IFMT == unix.S_IFDIR) {
		// Replaced, never written through: it may be a hard link of
		// another path, or another kind of entry.
		if err := removeAt(parent, base); err != nil {
			return 0, err
		}
	}
	var n int64
	switch hdr.Typeflag {
	case tar.TypeDir:
		if !exists || existing.Mode&unix.S_IFMT != unix.S_IFDIR {
			if err := unix.Mkdirat(parent, base, 0o700); err != nil {
				return 0, err
			}
		}
	case tar.TypeReg:
		fd, err := unix.Openat(parent, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return 0, err
		}
		f := os.NewFile(uintptr(fd), base)
		n, err = io.Copy(f, tr)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return n, err
		}
	case tar.TypeLink:
		target, err := openParent(root, hdr.Linkname)
		if err != nil {
			return 0, fmt.Errorf("hard link to %s: %w", hdr.Linkname, err)
		}
		err = unix.Linkat(target, path.Base(path.Clean(hdr.Linkname)), parent, base, 0)
		unix.Close(target)
		if err != nil {
			return 0, fmt.Errorf("hard link to %s: %w", hdr.Linkname, err)
		}
		return 0, nil // a link shares its inode's owner, mode and times
	case tar.TypeSymlink:
		if err := unix.Symlinkat(hdr.Linkname, parent, base); err != nil {
			return 0, err
		}
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		kind := uint32(unix.S_IFCHR)
		switch hdr.Typeflag {
		case tar.TypeBlock:
			kind = unix.S_IFBLK
		case tar.TypeFifo:
			kind = unix.S_IFIFO
		}
		dev := int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))
		if err := unix.Mknodat(parent, base, kind|0o600, dev); err != nil {
			return 0, err
		}
	default:
		return 0, fmt.Errorf("entry of type %q is not supported", hdr.Typeflag)
	}
	return n, setMeta(parent, base, hdr, hdr.Typeflag == tar.TypeSymlink)
}

// setMeta gives entry base of directory fd ("" for fd itself) the owner,
// mode, extended attributes and (but for directories, set last) times of hdr.
func setMeta(fd int, base string, hdr *tar.Header, symlink bool) error {
	p := fmt.Sprintf("/proc/self/fd/%d", fd)
	if base != "" {
		p += "/" + base
	}
	if err := unix.Fchownat(fd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW|emptyPathFlag(base)); err != nil {
		return fmt.Errorf("owner of %s: %w", base, err)
	}
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok {
			continue
		}
		var err error
		if base == "" {
			err = unix.Fsetxattr(fd, name, []byte(v), 0) // not through /proc's magic link
		} else {
			err = unix.Lsetxattr(p, name, []byte(v), 0)
		}
		if err != nil {
			return fmt.Errorf("xattr %s of %s: %w", name, base, err)
		}
	}
	if !symlink {
		// After the owner and the xattrs: a chown drops setuid bits.
		if err := unix.Fchmodat(fd, base, uint32(hdr.Mode&0o7777), 0); base != "" && err != nil {
			return fmt.Errorf("mode of %s: %w", base, err)
		}
		if base == "" {
			if err := unix.Fchmod(fd, uint32(hdr.Mode&0o7777)); err != nil {
				return err
			}
		}
	}
	if hdr.Typeflag == tar.TypeDir {
		return nil
	}
	return setTimes(fd, base, hdr)
}

// setTimes sets the access and modification times of entry base of
// directory fd ("" for fd itself), not following a symlink.
func setTimes(fd int, base string, hdr *tar.Header) error {
	ts := []unix.Timespec{unix.NsecToTimespec(hdr.AccessTime.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
	if base == "" {
		return unix.UtimesNano(fmt.Sprintf("/proc/self/fd/%d", fd), ts)
	}
	return unix.UtimesNanoAt(fd, base, ts, unix.AT_SYMLINK_NOFOLLOW)
}
