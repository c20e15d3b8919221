package rootfs

import (
	"strings"
	"testing"
)

// TestExternalMounts: each external once, with its key, the device nodes,
// the console and the boot id among them. That they match a real tree is
// tests.TestExternalMountsMatchTheTree.
func TestExternalMounts(t *testing.T) {
	ext := ExternalMounts("/proc")
	seen := map[string]bool{}
	for _, e := range ext {
		if seen[e.Target] {
			t.Errorf("%s listed twice", e.Target)
		}
		seen[e.Target] = true
		if !strings.HasPrefix(e.Key(), "lodge:/") {
			t.Errorf("key %q", e.Key())
		}
	}
	for _, want := range []string{"/dev/null", "/dev/tty", ConsoleTarget, BootIDTarget} {
		if !seen[want] {
			t.Errorf("%s is not external", want)
		}
	}
}
