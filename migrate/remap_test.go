package migrate

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/cgroup"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/mnt"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/userns"
	"google.golang.org/protobuf/proto"

	"lodge/internal/idmap"
)

var (
	remapFrom = idmap.Range{HostID: 524288, Size: 65536}
	remapTo   = idmap.Range{HostID: 655360, Size: 65536}
)

func TestRemapShiftID(t *testing.T) {
	for _, c := range []struct{ in, want uint32 }{
		{524288, 655360},     // the container's root
		{524288 + 5, 655365}, // a group of it
		{589823, 720895},     // its last id
		{0, 0},               // host root stays
		{589824, 589824},     // the next range stays
		{524287, 524287},     // below it
		{65534, 65534},       // an id that is no host id of the range
		{720896 + 1, 720897}, // an id of the new range's neighbour
	} {
		if got := shiftID(c.in, remapFrom, remapTo); got != c.want {
			t.Errorf("shiftID(%d) = %d, want %d", c.in, got, c.want)
		}
	}
}

func extent(first, lower, count uint32) *userns.UidGidExtent {
	return &userns.UidGidExtent{First: proto.Uint32(first), LowerFirst: proto.Uint32(lower), Count: proto.Uint32(count)}
}

func TestRemapUserns(t *testing.T) {
	e := &userns.UsernsEntry{UidMap: []*userns.UidGidExtent{extent(0, 524288, 65536)}, GidMap: []*userns.UidGidExtent{extent(0, 524288, 65536)}}
	if err := remapUserns(e, remapFrom, remapTo); err != nil {
		t.Fatal(err)
	}
	for _, x := range append(e.UidMap, e.GidMap...) {
		if x.GetFirst() != 0 || x.GetLowerFirst() != 655360 || x.GetCount() != 65536 {
			t.Errorf("extent after the remap: %v", x)
		}
	}
	for name, bad := range map[string]*userns.UsernsEntry{
		"outside":  {UidMap: []*userns.UidGidExtent{extent(0, 100000, 65536)}, GidMap: []*userns.UidGidExtent{extent(0, 524288, 65536)}},
		"overruns": {UidMap: []*userns.UidGidExtent{extent(0, 524289, 65536)}, GidMap: []*userns.UidGidExtent{extent(0, 524288, 65536)}},
		"empty":    {UidMap: []*userns.UidGidExtent{extent(0, 524288, 65536)}},
	} {
		if err := remapUserns(bad, remapFrom, remapTo); err == nil {
			t.Errorf("%s: remapped %v", name, bad)
		}
	}
}

func perms(uid, gid uint32) *cgroup.CgroupPerms {
	return &cgroup.CgroupPerms{Mode: proto.Uint32(0o40755), Uid: proto.Uint32(uid), Gid: proto.Uint32(gid)}
}

func TestRemapCgroups(t *testing.T) {
	e := &cgroup.CgroupEntry{Controllers: []*cgroup.CgControllerEntry{{
		Cnames: []string{"memory"},
		Dirs: []*cgroup.CgroupDirEntry{{
			DirName:  proto.String("lodge/c1"),
			DirPerms: perms(524288, 524288),
			Properties: []*cgroup.CgroupPropEntry{
				{Name: proto.String("memory.max"), Value: proto.String("max"), Perms: perms(0, 0)},
				{Name: proto.String("cgroup.procs"), Value: proto.String(""), Perms: perms(524288, 524289)},
				{Name: proto.String("x"), Value: proto.String("")},
			},
			Children: []*cgroup.CgroupDirEntry{{DirName: proto.String("init.scope"), DirPerms: perms(524288+100, 524288+101)}},
		}},
	}}}
	remapCgroups(e, remapFrom, remapTo)
	d := e.Controllers[0].Dirs[0]
	check := func(what string, p *cgroup.CgroupPerms, uid, gid uint32) {
		t.Helper()
		if p.GetUid() != uid || p.GetGid() != gid || p.GetMode() != 0o40755 {
			t.Errorf("%s: %v, want %d:%d", what, p, uid, gid)
		}
	}
	check("dir", d.DirPerms, 655360, 655360)
	check("memory.max", d.Properties[0].Perms, 0, 0)
	check("cgroup.procs", d.Properties[1].Perms, 655360, 655361)
	check("child", d.Children[0].DirPerms, 655460, 655461)
}

func TestRemapMountOptions(t *testing.T) {
	if got := hostIDOptions("mode=755,uid=0,gid=0,size=65536k", remapFrom); len(got) != 0 {
		t.Errorf("namespace ids taken for host ids: %v", got)
	}
	if got := hostIDOptions("gid=524293,mode=620,uid=524288,uid=x", remapFrom); !reflect.DeepEqual(got, []string{"gid=524293", "uid=524288"}) {
		t.Errorf("host ids in options: %v", got)
	}
}

// writeImage writes entries as a CRIU image of magic at path.
func writeImage(t *testing.T, path, magic string, entries ...proto.Message) {
	t.Helper()
	data, err := encodeImage(magic, entries)
	if err == nil {
		err = os.WriteFile(path, data, 0o644)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestRemapImageFormat: an image as CRIU writes it (the bytes of a
// userns image of a real dump) is read, and written back the same.
func TestRemapImageFormat(t *testing.T) {
	// A Debian container's userns-15.img, CRIU 4.2.1: IMG_COMMON, USERNS,
	// one entry of uid_map and gid_map {0, 589824, 65536}.
	real := []byte{
		0x19, 0x43, 0x56, 0x54, 0x06, 0x49, 0x47, 0x55, 0x18, 0x00, 0x00, 0x00,
		0x0a, 0x0a, 0x08, 0x00, 0x10, 0x80, 0x80, 0x24, 0x18, 0x80, 0x80, 0x04,
		0x12, 0x0a, 0x08, 0x00, 0x10, 0x80, 0x80, 0x24, 0x18, 0x80, 0x80, 0x04,
	}
	path := filepath.Join(t.TempDir(), "userns-15.img")
	if err := os.WriteFile(path, real, 0o644); err != nil {
		t.Fatal(err)
	}
	entries, err := readImage(path, "USERNS", func() proto.Message { return &userns.UsernsEntry{} })
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("%d entries", len(entries))
	}
	e := entries[0].(*userns.UsernsEntry)
	if x := e.UidMap[0]; x.GetFirst() != 0 || x.GetLowerFirst() != 589824 || x.GetCount() != 65536 || len(e.GidMap) != 1 {
		t.Fatalf("read %v", e)
	}
	again, err := encodeImage("USERNS", entries)
	if err != nil || string(again) != string(real) {
		t.Fatalf("written back as % x (%v)", again, err)
	}
	if _, err := readImage(path, "CGROUP", func() proto.Message { return &cgroup.CgroupEntry{} }); err == nil {
		t.Error("a userns image was read as a cgroup image")
	}
	if err := os.WriteFile(path, real[:len(real)-3], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readImage(path, "USERNS", func() proto.Message { return &userns.UsernsEntry{} }); err == nil {
		t.Error("a cut image was read")
	}
}

// TestRemapImages rewrites a checkpoint directory of images written as
// CRIU writes them, and reads them back as CRIU reads them.
func TestRemapImages(t *testing.T) {
	dir := t.TempDir()
	if err := WriteRecord(dir, Record{Container: "c1", HostID: remapFrom.HostID, IDCount: remapFrom.Size, BootID: "b"}); err != nil {
		t.Fatal(err)
	}
	writeImage(t, filepath.Join(dir, "userns-15.img"), "USERNS",
		&userns.UsernsEntry{UidMap: []*userns.UidGidExtent{extent(0, 524288, 65536)}, GidMap: []*userns.UidGidExtent{extent(0, 524288, 65536)}})
	writeImage(t, filepath.Join(dir, "cgroup.img"), "CGROUP", &cgroup.CgroupEntry{Controllers: []*cgroup.CgControllerEntry{{
		Cnames: []string{"pids"}, Dirs: []*cgroup.CgroupDirEntry{{DirName: proto.String("c1"), DirPerms: perms(524288, 524288)}},
	}}})
	mount := func(opts string) *mnt.MntEntry {
		return &mnt.MntEntry{Fstype: proto.Uint32(5), MntId: proto.Uint32(1), RootDev: proto.Uint32(1), ParentMntId: proto.Uint32(1),
			Flags: proto.Uint32(0), Root: proto.String("/"), Mountpoint: proto.String("/run"), Source: proto.String("tmpfs"), Options: proto.String(opts)}
	}
	writeImage(t, filepath.Join(dir, "mountpoints-14.img"), "MNTS", mount("mode=755,uid=0,gid=0"))
	before, _ := os.ReadFile(filepath.Join(dir, "mountpoints-14.img"))

	if err := RemapImages(dir, remapFrom, idmap.Range{HostID: 1, Size: 10}); err == nil {
		t.Fatal("remapped to a range of another size")
	}
	if err := RemapImages(dir, remapTo, remapFrom); err == nil {
		t.Fatal("remapped a checkpoint from a range it was not made with")
	}
	if err := RemapImages(dir, remapFrom, remapTo); err != nil {
		t.Fatal(err)
	}
	rec, err := ReadRecord(dir)
	if err != nil || rec.HostID != remapTo.HostID || rec.IDCount != remapTo.Size || rec.BootID != "b" {
		t.Fatalf("record after the remap: %+v, %v", rec, err)
	}
	ns, err := readImage(filepath.Join(dir, "userns-15.img"), "USERNS", func() proto.Message { return &userns.UsernsEntry{} })
	if err != nil {
		t.Fatal(err)
	}
	if e := ns[0].(*userns.UsernsEntry); e.UidMap[0].GetLowerFirst() != 655360 || e.GidMap[0].GetLowerFirst() != 655360 {
		t.Errorf("user namespace after the remap: %v", e)
	}
	cg, err := readImage(filepath.Join(dir, "cgroup.img"), "CGROUP", func() proto.Message { return &cgroup.CgroupEntry{} })
	if err != nil {
		t.Fatal(err)
	}
	if p := cg[0].(*cgroup.CgroupEntry).Controllers[0].Dirs[0].DirPerms; p.GetUid() != 655360 || p.GetGid() != 655360 {
		t.Errorf("cgroup owner after the remap: %v", p)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "mountpoints-14.img")); string(after) != string(before) {
		t.Error("the mount image was changed")
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}

	// Host ids of the range in a mount's options: refused, nothing changed.
	writeImage(t, filepath.Join(dir, "mountpoints-14.img"), "MNTS", mount("mode=755,uid=655360,gid=655360"))
	nsBefore, _ := os.ReadFile(filepath.Join(dir, "userns-15.img"))
	err = RemapImages(dir, remapTo, remapFrom)
	if err == nil || !strings.Contains(err.Error(), "uid=655360") {
		t.Fatalf("host ids in a mount's options: %v", err)
	}
	if nsAfter, _ := os.ReadFile(filepath.Join(dir, "userns-15.img")); string(nsAfter) != string(nsBefore) {
		t.Error("a refused remap changed the user namespace image")
	}
}
