package manager

import (
	"strings"
	"testing"
)

func TestValidateSnapshotName(t *testing.T) {
	for _, ok := range []string{"snap0", "before-upgrade", "2026-11-29", "v1.2_rc", "A", strings.Repeat("a", 63)} {
		if err := ValidateSnapshotName(ok); err != nil {
			t.Errorf("ValidateSnapshotName(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", ".hidden", ".lodge-storage-tmp.x", "..", "-x", "_x", "a/b", "a b", "snäp", strings.Repeat("a", 64), "x\n"} {
		if err := ValidateSnapshotName(bad); err == nil {
			t.Errorf("ValidateSnapshotName(%q) = nil, want an error", bad)
		}
	}
}

func TestSplitSource(t *testing.T) {
	for src, want := range map[string][2]string{"web": {"web", ""}, "web/snap0": {"web", "snap0"}} {
		name, snap, err := splitSource(src)
		if err != nil || name != want[0] || snap != want[1] {
			t.Errorf("splitSource(%q) = %q, %q, %v; want %q, %q", src, name, snap, err, want[0], want[1])
		}
	}
	for _, bad := range []string{"", "/snap", "web/", "web/a/b", "web/.x", "../web"} {
		if _, _, err := splitSource(bad); err == nil {
			t.Errorf("splitSource(%q) succeeded, want an error", bad)
		}
	}
}
