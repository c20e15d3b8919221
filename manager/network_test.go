package manager

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"lodge/config"
	"lodge/internal/store"
)

func TestAddressProblem(t *testing.T) {
	v4 := netip.MustParsePrefix("10.1.2.0/24")
	v6 := netip.MustParsePrefix("fd12:3456:789a::/64")
	tests := []struct {
		addr   string
		subnet netip.Prefix
		want   string
	}{
		{"10.1.2.5", v4, ""},
		{"10.1.2.254", v4, ""},
		{"10.1.3.5", v4, "is outside the subnet 10.1.2.0/24"},
		{"10.1.2.0", v4, "is the network address"},
		{"10.1.2.1", v4, "is the gateway"},
		{"10.1.2.255", v4, "is the broadcast address"},
		{"fd12:3456:789a::5", v6, ""},
		{"fd12:3456:789a::1", v6, "is the gateway"},
		{"fd12:3456:789b::5", v6, "is outside the subnet"},
		{"fd12:3456:789a::5", netip.Prefix{}, "no such subnet"},
	}
	for _, tt := range tests {
		got := addressProblem(netip.MustParseAddr(tt.addr), tt.subnet)
		if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
			t.Errorf("addressProblem(%s, %s) = %q, want %q", tt.addr, tt.subnet, got, tt.want)
		}
	}
	if got := usableRange(netip.MustParsePrefix("10.1.0.0/16")); got != "use an address from 10.1.0.2 to 10.1.255.254" {
		t.Errorf("usableRange = %q", got)
	}
}

// TestNetworkStore reads records as CreateNetwork writes them, without the
// kernel: a directory without a record (a create that crashed) and one
// whose name is no network's are skipped, a damaged record is named.
func TestNetworkStore(t *testing.T) {
	m := &Manager{store: &store.Store{Root: t.TempDir()}, host: config.DefaultHost()}
	if recs, err := m.networkRecords(); err != nil || len(recs) != 0 {
		t.Fatalf("no networks dir: %v, %v", recs, err)
	}
	write := func(name, text string) {
		os.MkdirAll(filepath.Dir(m.networkPath(name)), 0o700)
		if err := os.WriteFile(m.networkPath(name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("web", `{"name": "web", "ipv4": "10.1.2.0/24", "ipv6": "fd12:3456:789a::/64", "nat": false, "created": "2026-01-01T00:00:00Z"}`)
	os.MkdirAll(filepath.Join(m.networksDir(), "crashed"), 0o700)
	os.MkdirAll(filepath.Join(m.networksDir(), "Not_A_Name"), 0o700)
	recs, err := m.networkRecords()
	if err != nil || len(recs) != 1 || recs[0].subnet4().String() != "10.1.2.0/24" || recs[0].subnet6().Bits() != 64 {
		t.Fatalf("networkRecords = %+v, %v", recs, err)
	}
	if _, err := m.readNetwork("crashed"); !errors.Is(err, ErrNotFound) {
		t.Errorf("readNetwork(crashed) = %v, want ErrNotFound", err)
	}
	if _, err := m.readNetwork("../containers/x"); !errors.Is(err, ErrInvalid) {
		t.Errorf("readNetwork(../containers/x) = %v, want ErrInvalid", err)
	}
	write("broken", "{")
	if _, err := m.readNetwork("broken"); err == nil || !strings.Contains(err.Error(), "is damaged") {
		t.Errorf("readNetwork(broken) = %v", err)
	}
	// One damaged record hides no other network, and is shown as damaged.
	if recs, err := m.networkRecords(); err != nil || len(recs) != 1 {
		t.Errorf("with a damaged record, networkRecords = %+v, %v", recs, err)
	}
	if d := m.damagedNetworks(nil); len(d) != 1 || d[0].Name != "broken" || d[0].State != "damaged" || len(d[0].Warnings) != 1 {
		t.Errorf("damagedNetworks = %+v", d)
	}
	m.host.Network.Tag = "t1"
	if m.netID("web") != "t1-web" {
		t.Errorf("netID = %q", m.netID("web"))
	}
}
