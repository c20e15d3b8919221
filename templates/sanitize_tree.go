package templates

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// sanitizeTree applies the image rules (sanitize.go) to a root filesystem on
// disk: a template's fresh build (debootstrap makes device nodes in its
// target) or an image an older lodge made. Every change is made through a
// descriptor opened beneath rootfs without following symlinks, so a tree that
// was once reachable by host users cannot steer it elsewhere.
func sanitizeTree(rootfs string) (*Changes, error) {
	root, err := unix.Open(rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", rootfs, err)
	}
	defer unix.Close(root)
	changes := &Changes{}
	err = filepath.WalkDir(rootfs, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(rootfs, path)
		if err != nil {
			return err
		}
		m, err := memberOnDisk(rel, d)
		if err != nil {
			return err
		}
		fixed, v, n := sanitizeMember(m)
		if v == keep {
			return nil
		}
		changes.add(rel, v, n)
		if err := applyOnDisk(root, m, fixed, v); err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		return nil
	})
	return changes, err
}

// memberOnDisk describes a file (not followed if a symlink) as a member.
func memberOnDisk(rel string, d fs.DirEntry) (member, error) {
	info, err := d.Info()
	if err != nil {
		return member{}, err
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return member{}, fmt.Errorf("no owner for %s", rel)
	}
	m := member{Name: rel, Mode: int64(st.Mode & 0o7777), UID: int(st.Uid), GID: int(st.Gid)}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		m.Type = typeReg
	case unix.S_IFDIR:
		m.Type = typeDir
	case unix.S_IFLNK:
		m.Type = typeSymlink
	case unix.S_IFCHR:
		m.Type = typeChar
	case unix.S_IFBLK:
		m.Type = typeBlock
	default: // FIFOs, and sockets a build left: harmless, judged by owner as FIFOs
		m.Type = typeFifo
	}
	return m, nil
}

const beneath = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV

// applyOnDisk makes the file m what the rules made of it: removed, or with
// another owner and mode.
func applyOnDisk(root int, m, fixed member, v verdict) error {
	if v != changed {
		return removeBeneath(root, m.Name)
	}
	fd, err := unix.Openat2(root, m.Name, &unix.OpenHow{Flags: unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC, Resolve: beneath})
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	// chown first: it clears setuid and setgid, which the chmod then sets as
	// the rules say.
	if err := unix.Fchownat(fd, "", fixed.UID, fixed.GID, unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	if m.Type == typeSymlink {
		return nil // a symlink has no mode of its own
	}
	return unix.Chmod("/proc/self/fd/"+strconv.Itoa(fd), uint32(fixed.Mode))
}

// removeBeneath unlinks a file that is not a directory, beneath root.
func removeBeneath(root int, rel string) error {
	dir, base := filepath.Split(rel)
	if dir == "" {
		dir = "."
	}
	parent, err := unix.Openat2(root, dir, &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: beneath})
	if err != nil {
		return err
	}
	defer unix.Close(parent)
	if err := unix.Unlinkat(parent, base, 0); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}
