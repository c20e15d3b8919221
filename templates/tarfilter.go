package templates

import (
	"archive/tar"
	"fmt"
	"io"
	"path"
	"strings"
)

// filterTarball copies the tarball r to w, member by member, as the image
// rules (sanitize.go) allow: device nodes, members outside the root, members
// under a symlink the tarball made (tar would write through it) and hard
// links to what was left out are dropped, owners and setuid bits changed. It
// records what changed in c. The output is a PAX tarball that keeps each
// member's xattrs and ACLs (SCHILY records, as GNU tar writes and reads them).
func filterTarball(r io.Reader, w io.Writer, c *Changes) error {
	tr, tw := tar.NewReader(r), tar.NewWriter(w)
	f := &tarFilter{dropped: map[string]verdict{}, symlinks: map[string]bool{}, changes: c}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read tarball: %w", err)
		}
		if err := checkSparse(h); err != nil {
			return err
		}
		out, ok := f.header(h)
		if !ok {
			continue
		}
		if err := tw.WriteHeader(out); err != nil {
			return fmt.Errorf("member %q: %w", h.Name, err)
		}
		if out.Typeflag == tar.TypeReg {
			if _, err := io.Copy(tw, tr); err != nil {
				return fmt.Errorf("member %q: %w", h.Name, err)
			}
		}
	}
	return tw.Close()
}

// maxSparse is the largest sparse file lodge imports: the filter writes out
// the holes (Go's tar writer makes no sparse files), so a small tarball could
// otherwise fill the disk with zeros. (A variable for the fuzz test.)
var maxSparse int64 = 1 << 30

func checkSparse(h *tar.Header) error {
	sparse := h.Typeflag == tar.TypeGNUSparse
	for k := range h.PAXRecords {
		sparse = sparse || strings.HasPrefix(k, "GNU.sparse.")
	}
	if sparse && h.Size > maxSparse {
		return fmt.Errorf("member %q is a sparse file of %d bytes; lodge imports sparse files of up to 1 GiB (re-create the tarball without --sparse, or remove the file)", h.Name, h.Size)
	}
	return nil
}

// tarFilter is what filterTarball remembers of the members so far.
type tarFilter struct {
	dropped  map[string]verdict // names left out, for hard links to them
	symlinks map[string]bool    // names that are symlinks, for members under them
	changes  *Changes
}

// header returns the header to write for h, or false to leave it out.
func (f *tarFilter) header(h *tar.Header) (*tar.Header, bool) {
	m, ok := memberOfHeader(h)
	if !ok {
		return nil, false // a pax global header: nothing to unpack
	}
	out, v, n := sanitizeMember(m)
	name := out.Name
	if v == keep || v == changed {
		v = f.judgePaths(out, v)
	} else if clean, ok := cleanMemberName(m.Name); ok {
		name = clean
	}
	f.changes.add(name, v, n)
	if v != keep && v != changed {
		f.dropped[name] = v
		return nil, false
	}
	delete(f.dropped, name)
	f.symlinks[name] = out.Type == typeSymlink
	if droppedRecords(h) {
		f.changes.trusted = append(f.changes.trusted, name)
	}
	return headerOfMember(out, h), true
}

// judgePaths drops a member whose name or hard link target passes through a
// symlink an earlier member made, and a hard link to a member left out.
func (f *tarFilter) judgePaths(m member, v verdict) verdict {
	if f.underSymlink(m.Name) || m.Type == typeLink && (f.underSymlink(m.Linkname) || f.symlinks[m.Linkname]) {
		return dropUnsafeName
	}
	if m.Type == typeLink {
		if why, ok := f.dropped[m.Linkname]; ok {
			return why // a second name of a device node is one too
		}
	}
	return v
}

// underSymlink reports whether a parent directory of name is a symlink.
func (f *tarFilter) underSymlink(name string) bool {
	for dir := path.Dir(name); dir != "." && dir != "/"; dir = path.Dir(dir) {
		if f.symlinks[dir] {
			return true
		}
	}
	return false
}

// memberOfHeader describes a tar header as a member; false for headers that
// are no member at all.
func memberOfHeader(h *tar.Header) (member, bool) {
	m := member{Name: h.Name, Linkname: h.Linkname, Type: h.Typeflag, Mode: h.Mode, UID: h.Uid, GID: h.Gid}
	switch h.Typeflag {
	case tar.TypeXGlobalHeader:
		return m, false
	case 0, tar.TypeCont, tar.TypeGNUSparse: // V7 regular files; the reader expands sparse ones
		m.Type = typeReg
	}
	return m, true
}

// headerOfMember makes the header to write: the member's name, type, owner
// and mode, h's times, size and extended attributes (with ACLs), numeric
// owners only.
func headerOfMember(m member, h *tar.Header) *tar.Header {
	out := &tar.Header{
		Typeflag: m.Type, Name: m.Name, Linkname: m.Linkname,
		Mode: m.Mode, Uid: m.UID, Gid: m.GID, ModTime: h.ModTime,
		Format: tar.FormatPAX,
	}
	if m.Type == typeReg {
		out.Size = h.Size
	}
	if m.Type == typeDir && m.Name != "." {
		out.Name += "/"
	}
	for k, v := range h.PAXRecords {
		if keptRecord(k) {
			if out.PAXRecords == nil {
				out.PAXRecords = map[string]string{}
			}
			out.PAXRecords[k] = v
		}
	}
	return out
}

// keptRecord says which PAX records of a member reach tar: xattrs and ACLs,
// but trusted.* xattrs, which only the host's root may set and its kernel
// trusts (overlayfs takes trusted.overlay.* as its own metadata).
func keptRecord(key string) bool {
	return strings.HasPrefix(key, "SCHILY.acl.") ||
		strings.HasPrefix(key, "SCHILY.xattr.") && !strings.HasPrefix(key, "SCHILY.xattr.trusted.")
}

// droppedRecords reports whether h has xattrs that keptRecord leaves out.
func droppedRecords(h *tar.Header) bool {
	for k := range h.PAXRecords {
		if strings.HasPrefix(k, "SCHILY.xattr.") && !keptRecord(k) {
			return true
		}
	}
	return false
}
