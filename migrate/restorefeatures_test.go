package migrate

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"testing"

	"lodge/internal/testreq"
)

func TestMissingFeatures(t *testing.T) {
	needs := []string{FeatureNftablesLock, FeatureTimens}
	if got := MissingFeatures(needs, []string{FeatureTimens, "uffd"}); !reflect.DeepEqual(got, []string{FeatureNftablesLock}) {
		t.Errorf("missing %v", got)
	}
	if got := MissingFeatures(needs, RestoreFeatures); len(got) != 0 {
		t.Errorf("missing %v of all", got)
	}
}

// TestDumpFeatures: a process in the host's time namespace needs the
// network lock only; one in a time namespace of its own (unshare --time)
// needs time namespaces too.
func TestDumpFeatures(t *testing.T) {
	got, err := DumpFeatures(os.Getpid())
	if err != nil || !reflect.DeepEqual(got, []string{FeatureNftablesLock}) {
		t.Fatalf("this process: %v, %v", got, err)
	}
	if os.Getuid() != 0 {
		testreq.Skip(t, "root", "unshare --time needs root")
	}
	// The shell is unshare's child, the first process in the new namespace.
	cmd := exec.Command("unshare", "--time", "--fork", "--kill-child", "sh", "-c", "echo $$; exec sleep 60")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		testreq.Skip(t, "unshare", fmt.Sprintf("unshare --time (a kernel with time namespaces, util-linux 2.36+): %v", err))
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	var pid int
	if _, err := fmt.Fscan(out, &pid); err != nil {
		t.Fatalf("unshare --time: %v", err)
	}
	if got, err := DumpFeatures(pid); err != nil || !reflect.DeepEqual(got, []string{FeatureNftablesLock, FeatureTimens}) {
		t.Errorf("a process with its own time namespace: %v, %v", got, err)
	}
}

// TestHasFeatures: the installed CRIU has what lodge's dumps need on this
// machine, and not a feature it does not know.
func TestHasFeatures(t *testing.T) {
	c := findInstalled(t)
	names := append([]string{"no_such_feature"}, RestoreFeatures...)
	got := c.HasFeatures(context.Background(), names)
	if !reflect.DeepEqual(got, RestoreFeatures) {
		t.Errorf("%s has %v of %v", c, got, names)
	}
	if again := c.HasFeatures(context.Background(), names); !reflect.DeepEqual(again, got) {
		t.Errorf("asked again: %v", again)
	}
}
