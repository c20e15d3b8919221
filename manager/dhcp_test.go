package manager

import (
	"net/netip"
	"path/filepath"
	"testing"

	"lodge/config"
	"lodge/internal/store"
)

func TestDHCPConfig(t *testing.T) {
	host := config.DefaultHost()
	host.Network.Tag = "t1"
	m := &Manager{store: &store.Store{Root: "/var/lib/lodge"}, host: host}
	r := networkRecord{Name: "web", IPv4: "10.1.2.0/24", IPv6: "fd12:3456:789a::/64", NAT: true}
	c := m.dhcpConfig(r)
	if c.Network != "t1-web" || c.Bridge != "lodge-t1-web" || c.Dir != filepath.Join("/var/lib/lodge", "networks", "web") ||
		c.IPv4 != netip.MustParsePrefix("10.1.2.0/24") || c.IPv6 != netip.MustParsePrefix("fd12:3456:789a::/64") || c.Domain != "lodge" || !c.Upstream {
		t.Errorf("dhcpConfig = %+v", c)
	}
	r.NAT = false
	if m.dhcpConfig(r).Upstream {
		t.Error("a network without NAT forwards queries to the host's resolvers")
	}
	if got := m.dhcpRecordPath("web"); got != "/var/lib/lodge/run/networks/web.json" {
		t.Errorf("dhcpRecordPath = %s", got)
	}
}
