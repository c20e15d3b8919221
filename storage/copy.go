package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// entry is one path of the source tree, as the walk found it.
type entry struct {
	rel    string // relative to the tree's top; "." is the top
	st     unix.Stat_t
	linkTo string // for a hard link after the first: the first path's rel
}

// copier copies one tree. The copy goes in phases, so that every phase can
// run without ordering worries: walk the source (totals for progress, hard
// links found), make every directory, copy every other entry in parallel,
// link the hard links, then give the directories their owners, modes and
// times deepest first (making an entry inside a directory changes its mtime).
type copier struct {
	src, dst       string
	opts           Options
	requireReflink bool

	noReflink atomic.Bool // the filesystem refused a clone: stop asking

	mu       sync.Mutex
	progress Progress
}

// copyTree copies the tree at src to dst, which must not exist, building it
// under a temporary name beside dst and renaming it into place when it is
// complete and on disk. With requireReflink every file's data must be shared
// with src (ErrNoCopyOnWrite if the filesystem cannot).
func copyTree(ctx context.Context, src, dst string, opts Options, requireReflink bool) error {
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("copy %s to %s: %w", src, dst, os.ErrExist)
	}
	tmp := tempPath(dst, "copy")
	if err := copyInto(ctx, src, tmp, opts, requireReflink); err != nil {
		return err
	}
	if err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dst, unix.RENAME_NOREPLACE); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("move copy of %s into place at %s: %w", src, dst, err)
	}
	return nil
}

// copyInto copies src to tmp and syncs the filesystem, removing tmp when it
// fails: on success tmp is complete and durable, ready to be renamed.
func copyInto(ctx context.Context, src, tmp string, opts Options, requireReflink bool) error {
	c := &copier{src: src, dst: tmp, opts: opts, requireReflink: requireReflink}
	err := c.run(ctx)
	if err == nil {
		// A rename is durable before the data it names: without this a
		// crash could leave a complete-looking tree of empty files.
		err = syncFS(tmp)
	}
	if err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return nil
}

func syncFS(path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}

func (c *copier) run(ctx context.Context) error {
	entries, err := c.walk(ctx)
	if err != nil {
		return err
	}
	if err := c.makeDirs(entries); err != nil {
		return err
	}
	if err := c.copyEntries(ctx, entries); err != nil {
		return err
	}
	if err := c.linkHardLinks(ctx, entries); err != nil {
		return err
	}
	return c.finishDirs(entries)
}

// walk lists the source tree top-down, adding up the totals and finding the
// hard links (every path of an inode after the first becomes a link).
func (c *copier) walk(ctx context.Context) ([]entry, error) {
	type inode struct{ dev, ino uint64 }
	first := map[inode]string{}
	var entries []entry
	var visit func(rel string) error
	visit = func(rel string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		e := entry{rel: rel}
		if err := unix.Lstat(filepath.Join(c.src, rel), &e.st); err != nil {
			return &os.PathError{Op: "lstat", Path: filepath.Join(c.src, rel), Err: err}
		}
		isDir := e.st.Mode&unix.S_IFMT == unix.S_IFDIR
		if !isDir && e.st.Nlink > 1 {
			key := inode{e.st.Dev, e.st.Ino}
			if f, ok := first[key]; ok {
				e.linkTo = f
			} else {
				first[key] = rel
			}
		}
		if rel == "." && !isDir {
			return fmt.Errorf("%s is not a directory", c.src)
		}
		entries = append(entries, e)
		c.progress.TotalFiles++
		if e.st.Mode&unix.S_IFMT == unix.S_IFREG && e.linkTo == "" {
			c.progress.TotalBytes += e.st.Size
		}
		if !isDir {
			return nil
		}
		names, err := readNames(filepath.Join(c.src, rel))
		if err != nil {
			return err
		}
		for _, n := range names {
			if err := visit(filepath.Join(rel, n)); err != nil {
				return err
			}
		}
		return nil
	}
	return entries, visit(".")
}

func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// makeDirs makes every directory, private until finishDirs gives it its
// mode: nothing half-made is ever readable by others.
func (c *copier) makeDirs(entries []entry) error {
	for _, e := range entries {
		if e.st.Mode&unix.S_IFMT != unix.S_IFDIR {
			continue
		}
		if err := os.Mkdir(filepath.Join(c.dst, e.rel), 0o700); err != nil {
			return err
		}
		c.done(0, false)
	}
	return nil
}

// copyEntries copies every entry but directories and hard links, in
// parallel (bounded by Options.Workers), stopping at the first error or
// when ctx ends.
func (c *copier) copyEntries(ctx context.Context, entries []entry) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan *entry)
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel() })
	}
	for range c.workers() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e := range jobs {
				if err := ctx.Err(); err != nil {
					fail(err)
					continue
				}
				if err := c.copyEntry(ctx, e); err != nil {
					fail(err)
				}
			}
		}()
	}
feed:
	for i := range entries {
		e := &entries[i]
		if e.st.Mode&unix.S_IFMT == unix.S_IFDIR || e.linkTo != "" {
			continue
		}
		select {
		case jobs <- e:
		case <-ctx.Done():
			fail(ctx.Err())
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	return firstErr
}

func (c *copier) workers() int {
	if c.opts.Workers > 0 {
		return c.opts.Workers
	}
	// Copies wait on the disk more than on the CPU: a few more workers
	// than CPUs keep the queue full without thrashing a small machine.
	return min(max(4, 2*runtime.NumCPU()), 16)
}

func (c *copier) copyEntry(ctx context.Context, e *entry) error {
	src, dst := filepath.Join(c.src, e.rel), filepath.Join(c.dst, e.rel)
	switch e.st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		reflinked, err := c.copyFile(ctx, src, dst, &e.st)
		if err != nil {
			return err
		}
		c.done(e.st.Size, reflinked)
		return nil
	case unix.S_IFLNK:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if err := os.Symlink(target, dst); err != nil {
			return err
		}
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO, unix.S_IFSOCK:
		if err := unix.Mknod(dst, e.st.Mode&unix.S_IFMT|0o600, int(e.st.Rdev)); err != nil {
			return &os.PathError{Op: "mknod", Path: dst, Err: err}
		}
	default:
		return fmt.Errorf("%s: unknown file type %#o", src, e.st.Mode&unix.S_IFMT)
	}
	if err := setMetaPath(src, dst, &e.st); err != nil {
		return err
	}
	c.done(0, false)
	return nil
}

// linkHardLinks links every path of an inode after the first to the first
// one's copy, which has its data and metadata by now.
func (c *copier) linkHardLinks(ctx context.Context, entries []entry) error {
	for _, e := range entries {
		if e.linkTo == "" {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := os.Link(filepath.Join(c.dst, e.linkTo), filepath.Join(c.dst, e.rel)); err != nil {
			return err
		}
		c.done(0, false)
	}
	return nil
}

// finishDirs gives the directories their owners, xattrs, modes and times,
// deepest first, so that no later change inside one moves its mtime.
func (c *copier) finishDirs(entries []entry) error {
	for i := len(entries) - 1; i >= 0; i-- {
		e := &entries[i]
		if e.st.Mode&unix.S_IFMT != unix.S_IFDIR {
			continue
		}
		if err := setMetaPath(filepath.Join(c.src, e.rel), filepath.Join(c.dst, e.rel), &e.st); err != nil {
			return err
		}
	}
	return nil
}

// done counts one finished entry and reports progress.
func (c *copier) done(bytes int64, reflinked bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.progress.Files++
	c.progress.Bytes += bytes
	if reflinked {
		c.progress.Reflinked++
	}
	if c.opts.Progress != nil {
		c.opts.Progress(c.progress)
	}
}

// isCloneUnsupported tells the errors with which a filesystem refuses
// FICLONE for every file (as opposed to EINVAL, which can be one file's
// problem, a swap file or a nodatacow one on btrfs).
func isCloneUnsupported(err error) bool {
	return errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EXDEV) ||
		errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.ENOSYS)
}

// xattrNames splits a listxattr buffer.
func xattrNames(buf []byte) []string {
	var names []string
	for _, n := range strings.Split(string(buf), "\x00") {
		if n != "" {
			names = append(names, n)
		}
	}
	return names
}
