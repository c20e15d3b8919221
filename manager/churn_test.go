package manager

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"lodge/config"
	"lodge/internal/idmap"
	"lodge/internal/testreq"
)

// TestCreateDeleteChurn creates and deletes 200 containers in random order and
// checks after every step that live containers hold pairwise disjoint id
// ranges from the pool, and that deleted ones hold none.
func TestCreateDeleteChurn(t *testing.T) {
	if os.Geteuid() != 0 {
		testreq.Skip(t, "root", "needs root (lodge refuses to run otherwise); run: sudo make test")
	}
	hostConfig := filepath.Join(t.TempDir(), "lodge.toml")
	os.WriteFile(hostConfig, []byte("version = 1\n[idmap]\nfirst = 300000000\ncount = 40\n"), 0o644)
	t.Setenv(config.HostConfigEnv, hostConfig)
	m, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(1))
	live := map[string]bool{}
	created := 0
	for created < 200 {
		if len(live) > 0 && (len(live) >= 30 || rng.Intn(3) == 0) {
			name := pick(rng, live)
			if err := m.Delete(context.Background(), name, false); err != nil {
				t.Fatalf("delete %s: %v", name, err)
			}
			delete(live, name)
		} else {
			name := fmt.Sprintf("churn%d", created)
			created++
			if err := m.Create(context.Background(), CreateOptions{Name: name, Template: "busybox"}); err != nil {
				t.Fatalf("create %s: %v", name, err)
			}
			live[name] = true
		}
		checkRanges(t, m, live)
	}
}

func pick(rng *rand.Rand, set map[string]bool) string {
	n := rng.Intn(len(set))
	for name := range set {
		if n == 0 {
			return name
		}
		n--
	}
	return ""
}

func checkRanges(t *testing.T, m *Manager, live map[string]bool) {
	t.Helper()
	ranges, err := m.allocator().List()
	if err != nil {
		t.Fatal(err)
	}
	if len(ranges) != len(live) {
		t.Fatalf("%d ranges allocated for %d live containers: %v", len(ranges), len(live), ranges)
	}
	seen := map[string]idmap.Range{}
	for name, r := range ranges {
		if !live[name] {
			t.Fatalf("deleted container %s still holds %s", name, r)
		}
		if r.HostID < 300000000 || r.Size != 65536 {
			t.Fatalf("%s holds %s, outside the pool", name, r)
		}
		for other, o := range seen {
			if r.Overlaps(o) {
				t.Fatalf("%s (%s) overlaps %s (%s)", name, r, other, o)
			}
		}
		seen[name] = r
	}
}
