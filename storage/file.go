package storage

import (
	"context"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// copyFile copies one regular file's data and metadata to dst (created).
// The data is shared with FICLONE where the filesystem can; otherwise it
// is copied range by range with copy_file_range (falling back to read and
// write), skipping holes so sparse files stay sparse.
func (c *copier) copyFile(ctx context.Context, src, dst string, st *unix.Stat_t) (reflinked bool, err error) {
	in, err := unix.Open(src, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, &os.PathError{Op: "open", Path: src, Err: err}
	}
	defer unix.Close(in)
	out, err := unix.Open(dst, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return false, &os.PathError{Op: "create", Path: dst, Err: err}
	}
	defer unix.Close(out)
	if st.Size > 0 {
		if reflinked, err = c.reflink(in, out, dst); err != nil {
			return false, err
		}
		if !reflinked {
			if err := copyData(ctx, in, out, st.Size); err != nil {
				return false, fmt.Errorf("copy data to %s: %w", dst, err)
			}
		}
	}
	if err := setMeta(fdOps(in), fdOps(out), dst, st); err != nil {
		return false, err
	}
	return reflinked, nil
}

// reflink shares in's data with out, reporting whether it did.
func (c *copier) reflink(in, out int, dst string) (bool, error) {
	if c.noReflink.Load() && !c.requireReflink {
		return false, nil
	}
	err := unix.IoctlFileClone(out, in)
	switch {
	case err == nil:
		return true, nil
	case c.requireReflink:
		return false, fmt.Errorf("%w for %s: the filesystem refused to share its blocks (%v); make a full copy instead", ErrNoCopyOnWrite, dst, err)
	case isCloneUnsupported(err):
		c.noReflink.Store(true)
	}
	return false, nil
}

// copyData copies size bytes of data, hole by hole.
func copyData(ctx context.Context, in, out int, size int64) error {
	for off := int64(0); off < size; {
		data, err := unix.Seek(in, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) { // only a hole left
			break
		}
		hole := size
		if err == nil {
			if hole, err = unix.Seek(in, data, unix.SEEK_HOLE); err != nil {
				return err
			}
		} else { // no SEEK_DATA here: copy everything
			data = off
		}
		if err := copyRange(ctx, in, out, data, min(hole, size)-data); err != nil {
			return err
		}
		off = hole
	}
	// Sets the size past a trailing hole.
	return unix.Ftruncate(out, size)
}

// chunk bounds one copy_file_range so that a cancelled context stops a big
// file's copy soon.
const chunk = 8 << 20

func copyRange(ctx context.Context, in, out int, off, n int64) error {
	for n > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		roff, woff := off, off
		done, err := unix.CopyFileRange(in, &roff, out, &woff, int(min(n, chunk)), 0)
		if err != nil {
			if errors.Is(err, unix.EXDEV) || errors.Is(err, unix.ENOSYS) ||
				errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) {
				return readWrite(ctx, in, out, off, n)
			}
			return err
		}
		if done == 0 { // the source shrank under us
			return nil
		}
		off, n = off+int64(done), n-int64(done)
	}
	return nil
}

func readWrite(ctx context.Context, in, out int, off, n int64) error {
	buf := make([]byte, min(n, 1<<20))
	for n > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		r, err := unix.Pread(in, buf[:min(n, int64(len(buf)))], off)
		if err != nil {
			return err
		}
		if r == 0 {
			return nil
		}
		if _, err := unix.Pwrite(out, buf[:r], off); err != nil {
			return err
		}
		off, n = off+int64(r), n-int64(r)
	}
	return nil
}

// metaOps reaches one file's xattrs, by descriptor or by path.
type metaOps struct {
	list func([]byte) (int, error)
	get  func(string, []byte) (int, error)
	set  func(string, []byte) error
}

func fdOps(fd int) metaOps {
	return metaOps{
		list: func(b []byte) (int, error) { return unix.Flistxattr(fd, b) },
		get:  func(n string, b []byte) (int, error) { return unix.Fgetxattr(fd, n, b) },
		set:  func(n string, v []byte) error { return unix.Fsetxattr(fd, n, v, 0) },
	}
}

func pathOps(path string) metaOps {
	return metaOps{
		list: func(b []byte) (int, error) { return unix.Llistxattr(path, b) },
		get:  func(n string, b []byte) (int, error) { return unix.Lgetxattr(path, n, b) },
		set:  func(n string, v []byte) error { return unix.Lsetxattr(path, n, v, 0) },
	}
}

// setMetaPath gives dst (not a regular file) src's metadata.
func setMetaPath(src, dst string, st *unix.Stat_t) error {
	return setMeta(pathOps(src), pathOps(dst), dst, st)
}

// setMeta gives dst src's owner, xattrs, mode and times, in that order:
// chown clears setuid bits and security.capability, so both come after it.
// The owner is copied as is (natural ids); nothing is shifted.
func setMeta(src, dst metaOps, path string, st *unix.Stat_t) error {
	if err := unix.Lchown(path, int(st.Uid), int(st.Gid)); err != nil {
		return &os.PathError{Op: "lchown", Path: path, Err: err}
	}
	if err := copyXattrs(src, dst, path); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		if err := unix.Fchmodat(unix.AT_FDCWD, path, st.Mode&0o7777, 0); err != nil {
			return &os.PathError{Op: "chmod", Path: path, Err: err}
		}
	}
	times := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, path, times, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "utimes", Path: path, Err: err}
	}
	return nil
}

// copyXattrs copies every extended attribute: security.capability, ACLs
// (system.posix_acl_*), SELinux labels, user.* alike. A source filesystem
// without xattrs has none to copy.
func copyXattrs(src, dst metaOps, path string) error {
	names, err := listXattrs(src.list)
	if err != nil {
		return fmt.Errorf("list xattrs of the source of %s: %w", path, err)
	}
	for _, name := range names {
		value, err := getXattr(src.get, name)
		if err != nil {
			return fmt.Errorf("read xattr %s for %s: %w", name, path, err)
		}
		if err := dst.set(name, value); err != nil {
			return fmt.Errorf("set xattr %s on %s: %w", name, path, err)
		}
	}
	return nil
}

func listXattrs(list func([]byte) (int, error)) ([]string, error) {
	for {
		n, err := list(nil)
		if errors.Is(err, unix.EOPNOTSUPP) {
			return nil, nil
		}
		if err != nil || n == 0 {
			return nil, err
		}
		buf := make([]byte, n)
		n, err = list(buf)
		if errors.Is(err, unix.ERANGE) { // grew meanwhile
			continue
		}
		if err != nil {
			return nil, err
		}
		return xattrNames(buf[:n]), nil
	}
}

func getXattr(get func(string, []byte) (int, error), name string) ([]byte, error) {
	for {
		n, err := get(name, nil)
		if err != nil {
			return nil, err
		}
		buf := make([]byte, n)
		n, err = get(name, buf)
		if errors.Is(err, unix.ERANGE) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}
