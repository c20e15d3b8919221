package manager

import (
	"errors"
	"strings"
	"testing"

	"lodge/config"
	"lodge/internal/idmap"
	"lodge/internal/store"
)

// TestClaimMigrationIDs: an incoming migration keeps its range when it is
// free here and one of this pool's, and gets one of this pool's otherwise,
// unless it cannot be remapped.
func TestClaimMigrationIDs(t *testing.T) {
	host := config.DefaultHost()
	host.IDMap = config.HostIDMap{First: 100000, Size: 65536, Count: 3}
	m := &Manager{store: &store.Store{Root: t.TempDir()}, host: host}
	r := func(i uint32) idmap.Range { return idmap.Range{HostID: 100000 + i*65536, Size: 65536} }
	offer := func(name string, hostID, count uint32) MigrationOffer {
		return MigrationOffer{Name: name, HostID: hostID, IDCount: count}
	}
	if _, err := m.allocator().Allocate("peer"); err != nil { // holds r(0)
		t.Fatal(err)
	}
	if got, err := m.claimMigrationIDs(offer("kept", r(2).HostID, 65536)); err != nil || got != r(2) {
		t.Fatalf("a free range: %s, %v", got, err)
	}
	// Taken by peer: the lowest free one instead.
	if got, err := m.claimMigrationIDs(offer("taken", r(0).HostID, 65536)); err != nil || got != r(1) {
		t.Fatalf("a taken range: %s, %v", got, err)
	}
	if err := m.allocator().Release("taken"); err != nil {
		t.Fatal(err)
	}
	// Not a range of this pool (another host's idmap.first).
	if got, err := m.claimMigrationIDs(offer("outside", 5000, 65536)); err != nil || got != r(1) {
		t.Fatalf("a range outside the pool: %s, %v", got, err)
	}
	for _, c := range []struct {
		offer MigrationOffer
		kind  error
		says  string
	}{
		{MigrationOffer{Name: "shifted", HostID: r(0).HostID, IDCount: 65536, Shifted: true}, ErrInUse, "chowned"},
		{MigrationOffer{Name: "shifted2", HostID: 5000, IDCount: 65536, Shifted: true}, ErrIncompatible, "chowned"},
		{offer("small", 5000, 1000), ErrIncompatible, "idmap.size"},
		{offer("full", r(0).HostID, 65536), idmap.ErrExhausted, "pool exhausted"},
		{offer("kept", r(0).HostID, 65536), ErrExists, "already holds"},
	} {
		got, err := m.claimMigrationIDs(c.offer)
		if !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: %s, %v; want %v saying %q", c.offer.Name, got, err, c.kind, c.says)
		}
		if _, held, _ := m.allocator().Lookup(c.offer.Name); held && c.offer.Name != "kept" {
			t.Errorf("%s: refused, and holds a range", c.offer.Name)
		}
	}
}
