package manager

import (
	"net/netip"
	"strings"
	"testing"
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
