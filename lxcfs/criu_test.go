package lxcfs

import (
	"strings"
	"testing"
)

// The dump and restore lists name the same mounts: every view, by a unique
// name, restored from the server's tree.
func TestCRIUExternal(t *testing.T) {
	dump, restore := CRIUDumpExternal("c1"), CRIURestoreExternal("/var/lib/lodge/run/lxcfs/mnt", "c1")
	if len(dump) != len(Mounts("c1")) || len(restore) != len(dump) {
		t.Fatalf("%d dump and %d restore entries for %d mounts", len(dump), len(restore), len(Mounts("c1")))
	}
	names := map[string]bool{}
	for i, d := range dump {
		name := d.Val
		if names[name] {
			t.Errorf("name %q used twice", name)
		}
		names[name] = true
		if restore[i].Key != name {
			t.Errorf("restore key %q, dump named %s %q", restore[i].Key, d.Key, name)
		}
		if !strings.HasPrefix(restore[i].Val, "/var/lib/lodge/run/lxcfs/mnt/containers/c1/") {
			t.Errorf("%s is restored from %q, outside the server's tree", name, restore[i].Val)
		}
	}
	if !names["lodge-lxcfs:/proc/meminfo"] || !names["lodge-lxcfs:/sys/devices/system/cpu"] {
		t.Errorf("names: %v", names)
	}
}
