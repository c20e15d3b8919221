package templates

import (
	"fmt"
	"path"
	"strings"
)

// An image's files keep their container ids on disk (0..65535: a container
// maps exactly these), so whatever an image holds is, on the host, owned by
// the host's own users and groups of the same numbers. The rules below keep an
// image's files harmless there and meaningful in the container:
//
//   - no device nodes: a char or block node made by host root opens the host's
//     device for whoever reaches it (and a container's /dev is a tmpfs lodge
//     fills itself, so an image never needs them);
//   - no owner outside 0..65535: such a file is owned by a host user no
//     container maps (it would show as nobody inside); it is given to 65534
//     (nobody/nogroup), as the container would see it anyway;
//   - setuid and setgid only for owners inside 0..65535: a setuid-root passwd
//     keeps working inside the container, while a file setuid to an id outside
//     the container's range loses the bit;
//   - member names stay inside the root: absolute names are made relative,
//     names and hard link targets that climb out with ".." are skipped.
//
// Together with the image directories being root-only (see Images), no host
// user can reach, run or open anything an image brings.

// Container ids that image files may be owned by.
const (
	maxContainerID = 65535
	nobodyID       = 65534 // nobody and nogroup on Debian, where unmapped ids show
)

// sanitizeVersion is the revision of the rules above. An image whose
// metadata records an older one (made by an older lodge) is checked again on
// its next use.
const sanitizeVersion = 1

// Member types, as tar's type flags.
const (
	typeReg     = '0'
	typeLink    = '1'
	typeSymlink = '2'
	typeChar    = '3'
	typeBlock   = '4'
	typeDir     = '5'
	typeFifo    = '6'
)

// member is what the rules look at in a tarball member or a file on disk.
type member struct {
	Name     string // relative to the root filesystem
	Linkname string // target of a hard link (relative) or symlink (as is)
	Type     byte
	Mode     int64 // permission bits, with setuid, setgid and sticky
	UID, GID int
}

// verdict is what happens to a member.
type verdict int

const (
	keep           verdict = iota // unchanged
	changed                       // kept with a safer owner or mode
	dropDevice                    // a device node: left out
	dropUnsafeName                // its name or link climbs out of the root
	dropType                      // a kind of member a root filesystem cannot hold
)

// sanitizeMember applies the rules to m and returns what may be unpacked, the
// verdict, and a note of what changed for the summary.
func sanitizeMember(m member) (member, verdict, note) {
	name, ok := cleanMemberName(m.Name)
	if !ok {
		return m, dropUnsafeName, note{}
	}
	m.Name = name
	switch m.Type {
	case typeChar, typeBlock:
		return m, dropDevice, note{}
	case typeLink:
		target, ok := cleanMemberName(m.Linkname)
		if !ok || target == "." {
			return m, dropUnsafeName, note{}
		}
		// A hard link shares its target's owner and mode; tar ignores its own.
		return member{Name: name, Linkname: target, Type: typeLink}, keep, note{}
	case typeReg, typeSymlink, typeDir, typeFifo:
	default:
		return m, dropType, note{}
	}
	return sanitizeOwner(m)
}

// note records what sanitizeOwner changed on one member.
type note struct {
	ClearedUID, ClearedGID bool // setuid, setgid cleared
	MappedUID, MappedGID   bool // owner, group given to nobody
	OldUID, OldGID         int
}

// sanitizeOwner maps owners outside the container's range to nobody and
// clears setuid and setgid bits that belonged to them.
func sanitizeOwner(m member) (member, verdict, note) {
	n := note{OldUID: m.UID, OldGID: m.GID}
	m.Mode &= 0o7777
	if !inContainerRange(m.UID) {
		n.MappedUID, m.UID = true, nobodyID
		n.ClearedUID = m.Mode&0o4000 != 0
		m.Mode &^= 0o4000
	}
	if !inContainerRange(m.GID) {
		n.MappedGID, m.GID = true, nobodyID
		n.ClearedGID = m.Mode&0o2000 != 0
		m.Mode &^= 0o2000
	}
	if n.MappedUID || n.MappedGID {
		return m, changed, n
	}
	return m, keep, n
}

func inContainerRange(id int) bool { return id >= 0 && id <= maxContainerID }

// cleanMemberName makes a member name relative to the root ("." for the root
// itself) and reports false for names that cannot be unpacked inside it: empty,
// with a NUL, or climbing out with "..".
func cleanMemberName(name string) (string, bool) {
	if name == "" || strings.ContainsRune(name, 0) {
		return "", false
	}
	rel := path.Clean(strings.TrimLeft(name, "/"))
	if rel == ".." || strings.HasPrefix(rel, "../") {
		return "", false
	}
	return rel, true
}

// Changes tallies what the rules changed in one image.
type Changes struct {
	devices, unsafe, types     []string
	setuid, setgid             []string // "path (uid N)"
	mappedOwners, mappedGroups []string
	trusted                    []string // members whose trusted.* xattrs were dropped
}

// add records a member's verdict.
func (c *Changes) add(name string, v verdict, n note) {
	switch v {
	case dropDevice:
		c.devices = append(c.devices, name)
	case dropUnsafeName:
		c.unsafe = append(c.unsafe, name)
	case dropType:
		c.types = append(c.types, name)
	}
	if n.ClearedUID {
		c.setuid = append(c.setuid, fmt.Sprintf("%s, uid %d", name, n.OldUID))
	}
	if n.ClearedGID {
		c.setgid = append(c.setgid, fmt.Sprintf("%s, gid %d", name, n.OldGID))
	}
	if n.MappedUID {
		c.mappedOwners = append(c.mappedOwners, fmt.Sprintf("%s, uid %d", name, n.OldUID))
	}
	if n.MappedGID {
		c.mappedGroups = append(c.mappedGroups, fmt.Sprintf("%s, gid %d", name, n.OldGID))
	}
}

// Lines says what changed, one sentence per kind of change; none when
// nothing did.
func (c *Changes) Lines() []string {
	var lines []string
	say := func(list []string, one, many string) {
		if len(list) > 0 {
			lines = append(lines, fmt.Sprintf("%s %s", plural(len(list), one, many), examples(list)))
		}
	}
	say(c.devices, "removed %d device node", "removed %d device nodes")
	say(c.setuid, "cleared setuid on %d file owned by a uid outside 0..65535", "cleared setuid on %d files owned by uids outside 0..65535")
	say(c.setgid, "cleared setgid on %d file of a gid outside 0..65535", "cleared setgid on %d files of gids outside 0..65535")
	say(c.mappedOwners, "gave %d file owned by a uid outside 0..65535 to uid 65534 (nobody)", "gave %d files owned by uids outside 0..65535 to uid 65534 (nobody)")
	say(c.mappedGroups, "gave %d file of a gid outside 0..65535 to gid 65534 (nogroup)", "gave %d files of gids outside 0..65535 to gid 65534 (nogroup)")
	say(c.unsafe, "skipped %d member whose name leaves the root or passes through a symlink", "skipped %d members whose names leave the root or pass through symlinks")
	say(c.trusted, "dropped the trusted.* xattrs (the host kernel's, e.g. overlayfs') of %d file", "dropped the trusted.* xattrs (the host kernel's, e.g. overlayfs') of %d files")
	say(c.types, "skipped %d member of a kind a root filesystem cannot hold", "skipped %d members of kinds a root filesystem cannot hold")
	return lines
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf(one, n)
	}
	return fmt.Sprintf(many, n)
}

// examples names the first few entries of list, in parentheses.
func examples(list []string) string {
	const shown = 5
	if len(list) <= shown {
		return "(" + strings.Join(quoteAll(list), "; ") + ")"
	}
	return fmt.Sprintf("(%s; and %d more)", strings.Join(quoteAll(list[:shown]), "; "), len(list)-shown)
}

// quoteAll keeps names with odd characters (newlines, escapes) on one line.
func quoteAll(list []string) []string {
	out := make([]string, len(list))
	for i, s := range list {
		q := fmt.Sprintf("%q", s)
		out[i] = q[1 : len(q)-1]
	}
	return out
}
