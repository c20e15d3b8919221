package templates

import (
	"archive/tar"
	"bytes"
	"io"
	"path"
	"strings"
	"testing"
)

func TestCleanMemberName(t *testing.T) {
	cases := []struct {
		in, out string
		ok      bool
	}{
		{"./etc/passwd", "etc/passwd", true},
		{"/etc/passwd", "etc/passwd", true},
		{"etc/", "etc", true},
		{"./", ".", true},
		{"/", ".", true},
		{"a/../b", "b", true},
		{"..", "", false},
		{"../etc/passwd", "", false},
		{"a/../../etc", "", false},
		{"/../../etc", "", false}, // GNU tar would strip "/" and then refuse the ".."
		{"", "", false},
		{"a\x00b", "", false},
		{"...", "...", true},
	}
	for _, c := range cases {
		out, ok := cleanMemberName(c.in)
		if out != c.out || ok != c.ok {
			t.Errorf("cleanMemberName(%q) = %q, %v; want %q, %v", c.in, out, ok, c.out, c.ok)
		}
	}
}

func TestSanitizeMember(t *testing.T) {
	cases := []struct {
		name string
		in   member
		want member
		v    verdict
	}{
		{"setuid root stays", member{Name: "usr/bin/passwd", Type: typeReg, Mode: 0o4755}, member{Name: "usr/bin/passwd", Type: typeReg, Mode: 0o4755}, keep},
		{"setuid outside the range goes", member{Name: "x", Type: typeReg, Mode: 0o6755, UID: 70000, GID: 70000}, member{Name: "x", Type: typeReg, Mode: 0o755, UID: nobodyID, GID: nobodyID}, changed},
		{"setgid of an in-range group stays", member{Name: "x", Type: typeReg, Mode: 0o6755, UID: 70000, GID: 42}, member{Name: "x", Type: typeReg, Mode: 0o2755, UID: nobodyID, GID: 42}, changed},
		{"type bits in the mode are dropped", member{Name: "d", Type: typeDir, Mode: 0o41777}, member{Name: "d", Type: typeDir, Mode: 0o1777}, keep},
		{"char device", member{Name: "dev/mem", Type: typeChar, Mode: 0o666}, member{}, dropDevice},
		{"block device", member{Name: "dev/sda", Type: typeBlock, Mode: 0o666}, member{}, dropDevice},
		{"climbing name", member{Name: "../../etc/shadow", Type: typeReg}, member{}, dropUnsafeName},
		{"climbing hard link", member{Name: "x", Linkname: "../etc/shadow", Type: typeLink}, member{}, dropUnsafeName},
		{"hard link to the root", member{Name: "x", Linkname: "/", Type: typeLink}, member{}, dropUnsafeName},
		{"absolute hard link", member{Name: "x", Linkname: "/bin/sh", Type: typeLink}, member{Name: "x", Linkname: "bin/sh", Type: typeLink}, keep},
		{"symlink target untouched", member{Name: "x", Linkname: "../../../etc", Type: typeSymlink, Mode: 0o777}, member{Name: "x", Linkname: "../../../etc", Type: typeSymlink, Mode: 0o777}, keep},
		{"negative id", member{Name: "x", Type: typeReg, UID: -1}, member{Name: "x", Type: typeReg, UID: nobodyID}, changed},
		{"unknown type", member{Name: "x", Type: 'V'}, member{}, dropType},
	}
	for _, c := range cases {
		got, v, _ := sanitizeMember(c.in)
		if v != c.v || (v == keep || v == changed) && got != c.want {
			t.Errorf("%s: got %+v, %v; want %+v, %v", c.name, got, v, c.want, c.v)
		}
	}
}

func TestChangesLines(t *testing.T) {
	var c Changes
	if len(c.Lines()) != 0 {
		t.Fatalf("no changes gave %q", c.Lines())
	}
	for _, m := range []member{
		{Name: "dev/sda", Type: typeBlock}, {Name: "dev/mem", Type: typeChar},
		{Name: "usr/bin/x", Type: typeReg, Mode: 0o4755, UID: 70000},
	} {
		_, v, n := sanitizeMember(m)
		c.add(m.Name, v, n)
	}
	got := strings.Join(c.Lines(), "\n")
	for _, want := range []string{"removed 2 device nodes (dev/sda; dev/mem)", "cleared setuid on 1 file owned by a uid outside 0..65535 (usr/bin/x, uid 70000)"} {
		if !strings.Contains(got, want) {
			t.Errorf("summary %q lacks %q", got, want)
		}
	}
}

// FuzzSanitizeMember: whatever a tarball says, what may be unpacked stays in
// the root, is no device, and is setuid or setgid only for container ids;
// the rules change nothing the second time.
func FuzzSanitizeMember(f *testing.F) {
	f.Add("./usr/bin/passwd", "", byte(typeReg), int64(0o4755), 0, 0)
	f.Add("../../etc/shadow", "", byte(typeReg), int64(0o644), 0, 0)
	f.Add("dev/mem", "", byte(typeChar), int64(0o666), 0, 0)
	f.Add("x", "/../y", byte(typeLink), int64(0o6755), 70000, 70000)
	f.Add("/a//b/./../c/", "../x", byte(typeSymlink), int64(0o777), -5, 1<<40)
	f.Fuzz(func(t *testing.T, name, link string, typ byte, mode int64, uid, gid int) {
		in := member{Name: name, Linkname: link, Type: typ, Mode: mode, UID: uid, GID: gid}
		out, v, _ := sanitizeMember(in)
		if v != keep && v != changed {
			return
		}
		checkSafe(t, in, out)
		again, v2, _ := sanitizeMember(out)
		if v2 != keep || again != out {
			t.Fatalf("not stable: %+v -> %+v -> %+v (%v)", in, out, again, v2)
		}
	})
}

func checkSafe(t *testing.T, in, out member) {
	t.Helper()
	if !safeName(out.Name) || out.Type == typeLink && (!safeName(out.Linkname) || out.Linkname == ".") {
		t.Fatalf("%+v: unpacks outside the root: %+v", in, out)
	}
	if out.Type == typeChar || out.Type == typeBlock {
		t.Fatalf("%+v: a device node is kept", in)
	}
	if out.Type != typeLink && (!inContainerRange(out.UID) || !inContainerRange(out.GID) || out.Mode&^0o7777 != 0) {
		t.Fatalf("%+v: owner or mode out of range: %+v", in, out)
	}
	if out.Mode&0o4000 != 0 && !inContainerRange(in.UID) || out.Mode&0o2000 != 0 && !inContainerRange(in.GID) {
		t.Fatalf("%+v: setuid or setgid kept for an id outside the range: %+v", in, out)
	}
}

func safeName(name string) bool {
	return name != "" && !strings.HasPrefix(name, "/") && path.Clean(name) == name &&
		name != ".." && !strings.HasPrefix(name, "../") && !strings.ContainsRune(name, 0)
}

// FuzzFilterTarball: any byte string fed to the importer's filter either
// fails or yields a tarball whose members all pass checkSafe.
func FuzzFilterTarball(f *testing.F) {
	f.Add(sampleTarball(f))
	f.Add([]byte("not a tarball"))
	maxSparse = 1 << 20 // sparse files are written out in full: keep them small here
	f.Fuzz(func(t *testing.T, data []byte) {
		var out bytes.Buffer
		if err := filterTarball(bytes.NewReader(data), &out, &Changes{}); err != nil {
			return
		}
		tr := tar.NewReader(&out)
		seen := &tarFilter{symlinks: map[string]bool{}}
		for {
			h, err := tr.Next()
			if err == io.EOF {
				return
			}
			if err != nil {
				t.Fatalf("the filter wrote a tarball that does not read back: %v", err)
			}
			m := member{Name: strings.TrimSuffix(h.Name, "/"), Linkname: h.Linkname, Type: h.Typeflag, Mode: h.Mode, UID: h.Uid, GID: h.Gid}
			if m.Name == "" {
				m.Name = "."
			}
			checkSafe(t, m, m)
			if seen.underSymlink(m.Name) || m.Type == typeLink && seen.underSymlink(m.Linkname) {
				t.Fatalf("%q is written through a symlink", m.Name)
			}
			seen.symlinks[m.Name] = m.Type == typeSymlink
			for k := range h.PAXRecords {
				if strings.HasPrefix(k, "SCHILY.xattr.trusted.") {
					t.Fatalf("%q keeps xattr %s", m.Name, k)
				}
			}
		}
	})
}

// sampleTarball holds what a hostile image might: a setuid program of an id
// outside the range, device nodes, a hard link to one, a climbing name and a
// file with an xattr.
func sampleTarball(tb testing.TB) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range []*tar.Header{
		{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "./etc/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "./usr/bin/passwd", Typeflag: tar.TypeReg, Mode: 0o4755, Size: 4},
		{Name: "./usr/bin/evil", Typeflag: tar.TypeReg, Mode: 0o4755, Uid: 70000, Size: 4},
		{Name: "./dev/mem", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 1},
		{Name: "./dev/sda", Typeflag: tar.TypeBlock, Mode: 0o666, Devmajor: 8},
		{Name: "./dev/mem2", Typeflag: tar.TypeLink, Linkname: "./dev/mem"},
		{Name: "../../escape", Typeflag: tar.TypeReg, Mode: 0o644, Size: 4},
		{Name: "./lnk", Typeflag: tar.TypeSymlink, Linkname: "/etc"},
		{Name: "./lnk/passwd", Typeflag: tar.TypeReg, Mode: 0o644, Size: 4},
		{Name: "./lnk2", Typeflag: tar.TypeLink, Linkname: "lnk/shadow"},
		{Name: "./ping", Typeflag: tar.TypeReg, Mode: 0o755, Size: 4, PAXRecords: map[string]string{
			"SCHILY.xattr.security.capability":      "\x01\x00\x00\x02 \x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
			"SCHILY.xattr.trusted.overlay.redirect": "/etc",
		}},
	} {
		if err := tw.WriteHeader(h); err != nil {
			tb.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte("data"))
		}
	}
	tw.Close()
	return buf.Bytes()
}

func TestFilterTarball(t *testing.T) {
	var out bytes.Buffer
	var c Changes
	if err := filterTarball(bytes.NewReader(sampleTarball(t)), &out, &c); err != nil {
		t.Fatal(err)
	}
	got := map[string]*tar.Header{}
	tr := tar.NewReader(&out)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got[h.Name] = h
	}
	for _, gone := range []string{"dev/mem", "dev/sda", "dev/mem2", "../../escape", "escape", "lnk/passwd", "lnk2"} {
		if got[gone] != nil {
			t.Errorf("%s was kept", gone)
		}
	}
	if h := got["usr/bin/passwd"]; h == nil || h.Mode != 0o4755 || h.Uid != 0 {
		t.Errorf("setuid root passwd: %+v", h)
	}
	if h := got["usr/bin/evil"]; h == nil || h.Mode != 0o755 || h.Uid != nobodyID {
		t.Errorf("setuid uid 70000: %+v", h)
	}
	if h := got["ping"]; h == nil || h.PAXRecords["SCHILY.xattr.security.capability"] == "" || h.PAXRecords["SCHILY.xattr.trusted.overlay.redirect"] != "" {
		t.Errorf("want the capability kept and the trusted xattr dropped: %+v", h)
	}
	want := []string{"removed 3 device nodes (dev/mem; dev/sda; dev/mem2)", "cleared setuid on 1 file", "skipped 3 members whose names leave the root or pass through symlinks (../../escape; lnk/passwd; lnk2)",
		"dropped the trusted.* xattrs (the host kernel's, e.g. overlayfs') of 1 file (ping)"}
	lines := strings.Join(c.Lines(), "\n")
	for _, w := range want {
		if !strings.Contains(lines, w) {
			t.Errorf("summary %q lacks %q", lines, w)
		}
	}
}
