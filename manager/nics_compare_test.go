package manager

import (
	"net/netip"
	"strings"
	"testing"

	"lodge/migrate"
)

func TestCompareNICs(t *testing.T) {
	eth0 := migrate.RecordNIC{Name: "eth0", Kind: "bridged", MAC: "02:00:00:00:00:01", Network: "web", Address4: netip.MustParseAddr("10.0.0.5")}
	mv := migrate.RecordNIC{Name: "eth1", Kind: "macvlan", MAC: "02:00:00:00:00:02"}
	with := func(f func(*migrate.RecordNIC)) migrate.RecordNIC { n := eth0; f(&n); return n }
	for _, c := range []struct {
		name     string
		recorded []migrate.RecordNIC
		now      []migrate.RecordNIC
		want     string // "" = no error
	}{
		{"same", []migrate.RecordNIC{eth0, mv}, []migrate.RecordNIC{mv, eth0}, ""},
		{"none", nil, nil, ""},
		{"address taken", []migrate.RecordNIC{eth0}, []migrate.RecordNIC{with(func(n *migrate.RecordNIC) { n.Address4 = netip.MustParseAddr("10.0.0.6") })},
			"eth0 had IPv4 10.0.0.5, now would get 10.0.0.6"},
		{"mac", []migrate.RecordNIC{eth0}, []migrate.RecordNIC{with(func(n *migrate.RecordNIC) { n.MAC = "02:00:00:00:00:09" })},
			"eth0 had MAC 02:00:00:00:00:01, now 02:00:00:00:00:09"},
		{"network", []migrate.RecordNIC{eth0}, []migrate.RecordNIC{with(func(n *migrate.RecordNIC) { n.Network = "db" })},
			"eth0 was on network web, now on network db"},
		{"removed", []migrate.RecordNIC{eth0, mv}, []migrate.RecordNIC{eth0}, "eth1 is no longer configured"},
		{"added", []migrate.RecordNIC{eth0}, []migrate.RecordNIC{eth0, mv}, "eth1 was added after the checkpoint"},
		{"ipv6 gone", []migrate.RecordNIC{with(func(n *migrate.RecordNIC) { n.Address6 = netip.MustParseAddr("fd00::5") })}, []migrate.RecordNIC{eth0},
			"eth0 had IPv6 fd00::5, now would get none"},
	} {
		err := compareNICs(c.recorded, c.now)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: error %v, want one with %q", c.name, err, c.want)
		}
	}
}
