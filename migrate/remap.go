package migrate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/cgroup"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/mnt"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/userns"
	"github.com/checkpoint-restore/go-criu/v7/magic"
	"google.golang.org/protobuf/proto"

	"lodge/internal/atomicfile"
	"lodge/internal/idmap"
)

// Remapping a checkpoint to another id range: a migration onto a host
// where the container's range is taken (or outside its pool) restores it
// with a range of that host's own.
//
// Of a lodge container's images, CRIU 4.2 keeps host ids (the container's
// range) in two (checked on dumps of a busybox and of a Debian with
// systemd, and in CRIU's source):
//   - userns-*.img, the user namespace's uid_map and gid_map (first,
//     lower_first, count): a restore makes the namespace with them;
//   - cgroup.img, the owner of each cgroup directory and property file
//     (CgroupPerms: a stat by CRIU, host root): a restore chowns the
//     container's cgroups to them, even those lodge made (manage-cgroups
//     soft still restores a directory's perms).
//
// Everything else CRIU converts to the namespace's own ids at the dump
// (userns_uid/userns_gid: creds are read from inside the tasks; IPC
// owners, unix socket and ghost file owners, tty owners, loginuid,
// ping_group_range, the uid=/gid= options of mounts such as tmpfs and
// devpts) or reads from inside the namespace (the tmpfs contents' tar runs
// in it), and converts back through the uid_map at the restore. The root
// filesystem is on disk with the container's own ids (an idmapped mount),
// and the monitor makes the rest (the idmapped root, the cgroups'
// delegation, the console pty, the boot id file) with the range it finds
// in the host's allocations, the new one. So rewriting the two images and
// lodge's record is the whole remap.
//
// Not covered (refused where it can be seen): a tree whose owners were
// chowned into the range (the chown shift, the manager refuses), and a tun
// device's owner (CRIU reads it from sysfs in host ids; lodge containers
// have no tun device CRIU would dump). A process that read
// /proc/self/uid_map keeps what it read: the old range's base.

// RemapImages rewrites checkpoint dir, made of a container with host ids
// from, for a restore with host ids to (of the same size): the user
// namespace's maps, the cgroups' owners and lodge's record. It refuses,
// changing nothing it has not checked, a checkpoint whose maps are not
// from's, or one holding host ids of from in a mount option.
func RemapImages(dir string, from, to idmap.Range) error {
	if from.Size != to.Size || from.Size == 0 {
		return fmt.Errorf("remap ids %s to %s: the ranges differ in size", from, to)
	}
	rec, err := ReadRecord(dir)
	if err != nil {
		return err
	}
	if rec.HostID != from.HostID || rec.IDCount != from.Size {
		return fmt.Errorf("remap ids of checkpoint %s: it was made with ids %d+%d, not %s", dir, rec.HostID, rec.IDCount, from)
	}
	mounts, _ := filepath.Glob(filepath.Join(dir, "mountpoints-*.img"))
	for _, p := range mounts {
		if err := checkMountOptions(p, from); err != nil {
			return err
		}
	}
	nss, _ := filepath.Glob(filepath.Join(dir, "userns-*.img"))
	if len(nss) == 0 {
		return fmt.Errorf("remap ids of checkpoint %s: it has no user namespace image", dir)
	}
	for _, p := range nss {
		if err := rewriteImage(p, "USERNS", func() proto.Message { return &userns.UsernsEntry{} }, func(m proto.Message) error {
			return remapUserns(m.(*userns.UsernsEntry), from, to)
		}); err != nil {
			return err
		}
	}
	if p := filepath.Join(dir, "cgroup.img"); exists(p) {
		if err := rewriteImage(p, "CGROUP", func() proto.Message { return &cgroup.CgroupEntry{} }, func(m proto.Message) error {
			remapCgroups(m.(*cgroup.CgroupEntry), from, to)
			return nil
		}); err != nil {
			return err
		}
	}
	rec.HostID, rec.IDCount = to.HostID, to.Size
	return WriteRecord(dir, rec)
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// shiftID is id moved from range from to range to; ids outside from (host
// root's, say) stay as they are.
func shiftID(id uint32, from, to idmap.Range) uint32 {
	if c, ok := from.ToContainer(id); ok {
		return to.HostID + c
	}
	return id
}

// remapUserns moves a namespace's maps from range from to range to. Each
// extent must lie in from: the namespace of a lodge container maps its ids
// to its range and nothing else.
func remapUserns(e *userns.UsernsEntry, from, to idmap.Range) error {
	for _, m := range [][]*userns.UidGidExtent{e.UidMap, e.GidMap} {
		if len(m) == 0 {
			return errors.New("remap ids: the user namespace image has an empty map")
		}
		for _, x := range m {
			lower, count := x.GetLowerFirst(), x.GetCount()
			if count == 0 || !from.Contains(lower) || !from.Contains(lower+count-1) {
				return fmt.Errorf("remap ids: the user namespace maps %d+%d to host ids %d+%d, outside its range %s", x.GetFirst(), count, lower, count, from)
			}
			x.LowerFirst = proto.Uint32(shiftID(lower, from, to))
		}
	}
	return nil
}

// remapCgroups moves the owners of the cgroup directories and files in
// from to to.
func remapCgroups(e *cgroup.CgroupEntry, from, to idmap.Range) {
	perms := func(p *cgroup.CgroupPerms) {
		if p == nil {
			return
		}
		if p.Uid != nil {
			p.Uid = proto.Uint32(shiftID(*p.Uid, from, to))
		}
		if p.Gid != nil {
			p.Gid = proto.Uint32(shiftID(*p.Gid, from, to))
		}
	}
	var walk func([]*cgroup.CgroupDirEntry)
	walk = func(dirs []*cgroup.CgroupDirEntry) {
		for _, d := range dirs {
			perms(d.DirPerms)
			for _, p := range d.Properties {
				perms(p.Perms)
			}
			walk(d.Children)
		}
	}
	for _, c := range e.Controllers {
		walk(c.Dirs)
	}
}

// hostIDOptions returns the uid= and gid= values of mount options opts
// that are host ids of range r (CRIU saves them in the namespace's ids: a
// value in r would be one it did not convert).
func hostIDOptions(opts string, r idmap.Range) []string {
	var out []string
	for _, o := range strings.Split(opts, ",") {
		k, v, ok := strings.Cut(o, "=")
		if !ok || (k != "uid" && k != "gid") {
			continue
		}
		if n, err := strconv.ParseUint(v, 10, 32); err == nil && r.Contains(uint32(n)) {
			out = append(out, o)
		}
	}
	return out
}

// checkMountOptions refuses a mount image with host ids of r in a mount's
// options: remapping would leave them to the old range.
func checkMountOptions(path string, r idmap.Range) error {
	entries, err := readImage(path, "MNTS", func() proto.Message { return &mnt.MntEntry{} })
	if err != nil {
		return err
	}
	for _, e := range entries {
		m := e.(*mnt.MntEntry)
		if bad := hostIDOptions(m.GetOptions(), r); len(bad) > 0 {
			return fmt.Errorf("remap ids: the mount at %s has host ids of %s in its options (%s): lodge cannot move them to another range", m.GetMountpoint(), r, strings.Join(bad, ","))
		}
	}
	return nil
}

// CRIU's image files (criu/include/image.h, magic.h): a common image is
// IMG_COMMON's magic and its own, both 32-bit little endian, then its
// entries, each a 32-bit little-endian length and a protobuf message of the
// image's type. go-criu's images packages have the types; its crit package
// is not used, as it registers a stats.proto that conflicts with go-criu's
// own (a program linking both panics at start).

// readImage reads the entries of CRIU image path, of magic name want, each
// into a message newEntry makes.
func readImage(path, want string, newEntry func() proto.Message) ([]proto.Message, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	magics := magic.LoadMagic().ByName
	if len(data) < 8 || binary.LittleEndian.Uint32(data) != uint32(magics["IMG_COMMON"]) || binary.LittleEndian.Uint32(data[4:]) != uint32(magics[want]) {
		return nil, fmt.Errorf("image %s: not a CRIU %s image", path, want)
	}
	var out []proto.Message
	for rest := data[8:]; len(rest) > 0; {
		if len(rest) < 4 {
			return nil, fmt.Errorf("image %s: %w", path, io.ErrUnexpectedEOF)
		}
		n := binary.LittleEndian.Uint32(rest)
		if uint64(n) > uint64(len(rest)-4) {
			return nil, fmt.Errorf("image %s: entry of %d bytes: %w", path, n, io.ErrUnexpectedEOF)
		}
		e := newEntry()
		if err := proto.Unmarshal(rest[4:4+n], e); err != nil {
			return nil, fmt.Errorf("image %s: %w", path, err)
		}
		out = append(out, e)
		rest = rest[4+n:]
	}
	return out, nil
}

// encodeImage is a CRIU image of magic name and entries.
func encodeImage(name string, entries []proto.Message) ([]byte, error) {
	magics := magic.LoadMagic().ByName
	m, ok := magics[name]
	if !ok {
		return nil, fmt.Errorf("no CRIU image is called %s", name)
	}
	out := binary.LittleEndian.AppendUint32(nil, uint32(magics["IMG_COMMON"]))
	out = binary.LittleEndian.AppendUint32(out, uint32(m))
	for _, e := range entries {
		b, err := proto.Marshal(e)
		if err != nil {
			return nil, err
		}
		out = binary.LittleEndian.AppendUint32(out, uint32(len(b)))
		out = append(out, b...)
	}
	return out, nil
}

// rewriteImage reads CRIU image path (of magic name, entries newEntry
// makes), has change change each entry and replaces the file with the
// result (a new file renamed over it).
func rewriteImage(path, name string, newEntry func() proto.Message, change func(proto.Message) error) error {
	entries, err := readImage(path, name, newEntry)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := change(e); err != nil {
			return fmt.Errorf("%w (%s)", err, filepath.Base(path))
		}
	}
	data, err := encodeImage(name, entries)
	if err != nil {
		return fmt.Errorf("image %s: %w", path, err)
	}
	mode := os.FileMode(0o600)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	return atomicfile.WriteRuntime(path, data, mode) // the checkpoint is removed after the restore
}
