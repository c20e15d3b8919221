package network

import (
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"
)

func pfx(s ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, x := range s {
		out = append(out, netip.MustParsePrefix(x))
	}
	return out
}

func TestAllocateIPv4(t *testing.T) {
	free, err := AllocateIPv4(DefaultPool, nil, "default")
	if err != nil || !DefaultPool.Contains(free.Addr()) || free.Bits() != 24 {
		t.Fatalf("got %v, %v", free, err)
	}
	again, _ := AllocateIPv4(DefaultPool, nil, "default")
	if again != free {
		t.Errorf("not deterministic: %v then %v", free, again)
	}
	// The chosen /24 taken (by an address inside it, or a wider route): the next one.
	taken := pfx("0.0.0.0/0", hostAddr(free, 7).Addr().String()+"/32")
	next, err := AllocateIPv4(DefaultPool, taken, "default")
	if err != nil || next == free || next.Overlaps(free) {
		t.Errorf("with %v taken got %v, %v", taken, next, err)
	}
	// A small pool, wholly routed: an error that says so.
	_, err = AllocateIPv4(netip.MustParsePrefix("192.168.0.0/23"), pfx("192.168.0.0/24", "192.168.1.128/25"), "x")
	if !errors.Is(err, ErrNoSubnet) {
		t.Errorf("full pool: %v", err)
	}
	got, err := AllocateIPv4(netip.MustParsePrefix("192.168.0.0/23"), pfx("192.168.0.0/24"), "x")
	if err != nil || got != netip.MustParsePrefix("192.168.1.0/24") {
		t.Errorf("one left: %v, %v", got, err)
	}
}

func TestAllocateULA(t *testing.T) {
	p, err := AllocateULA("machine/default", nil)
	if err != nil || p.Bits() != 64 || !netip.MustParsePrefix("fd00::/8").Contains(p.Addr()) {
		t.Fatalf("got %v, %v", p, err)
	}
	q, _ := AllocateULA("machine/default", pfx(p.String()))
	if q == p || q.Overlaps(p) {
		t.Errorf("taken %v, got %v", p, q)
	}
	if _, err := AllocateULA("x", pfx("fd00::/8")); !errors.Is(err, ErrNoSubnet) {
		t.Errorf("all of fd00::/8 routed: %v", err)
	}
	if g := Gateway(p); g.Addr() != p.Addr().Next() || g.Bits() != 64 {
		t.Errorf("Gateway(%v) = %v", p, g)
	}
}

// TestAllocateOnHost reads this machine's routes and addresses and checks
// that the subnets chosen overlap none of them.
func TestAllocateOnHost(t *testing.T) {
	needRoot(t)
	used, err := UsedPrefixes(hostHandle(t))
	if err != nil {
		t.Fatal(err)
	}
	v4, err := AllocateIPv4(DefaultPool, used, "default")
	if err != nil {
		t.Fatal(err)
	}
	v6, err := AllocateULA("default", used)
	if err != nil {
		t.Fatal(err)
	}
	routes, _ := netlink.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: 0}, netlink.RT_FILTER_TABLE)
	for _, r := range routes {
		if p, ok := prefixOf(r.Dst); ok && p.Bits() > 0 && (p.Overlaps(v4) || p.Overlaps(v6)) {
			t.Errorf("route %v overlaps the chosen %v or %v", r, v4, v6)
		}
	}
	t.Logf("%d prefixes in use on the host (e.g. %v); chose %v and %v", len(used), used[:min(len(used), 6)], v4, v6)
}

func TestPickAddressStableAndSkipsTaken(t *testing.T) {
	subnet := netip.MustParsePrefix("10.9.8.0/24")
	mac := MAC("c1/eth0")
	none := func(netip.Addr) bool { return false }
	a, err := PickAddress(subnet, mac, none)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := PickAddress(subnet, mac, none); b != a {
		t.Fatalf("same MAC gave %s then %s", a, b)
	}
	if !subnet.Contains(a) || a == subnet.Addr() || a == Gateway(subnet).Addr() || a.As4()[3] == 255 {
		t.Fatalf("picked %s: not a container address of %s", a, subnet)
	}
	b, err := PickAddress(subnet, mac, func(x netip.Addr) bool { return x == a })
	if err != nil || b == a {
		t.Fatalf("with %s taken got %s, %v", a, b, err)
	}
}

func TestPickAddressFullSubnet(t *testing.T) {
	subnet := netip.MustParsePrefix("10.9.8.0/29") // .2 .. .6
	seen := map[netip.Addr]bool{}
	for range 5 {
		a, err := PickAddress(subnet, MAC("x"), func(x netip.Addr) bool { return seen[x] })
		if err != nil {
			t.Fatal(err)
		}
		seen[a] = true
	}
	for a := range seen {
		if last := a.As4()[3]; last < 2 || last > 6 {
			t.Errorf("picked %s outside .2-.6", a)
		}
	}
	if _, err := PickAddress(subnet, MAC("x"), func(x netip.Addr) bool { return seen[x] }); err == nil {
		t.Fatal("a full subnet gave an address")
	}
}

func TestEUI64(t *testing.T) {
	mac, _ := net.ParseMAC("0a:1b:2c:3d:4e:5f")
	got := EUI64(netip.MustParsePrefix("fd12:3456:789a::/64"), mac)
	if want := netip.MustParseAddr("fd12:3456:789a::81b:2cff:fe3d:4e5f"); got != want {
		t.Fatalf("EUI64 = %s, want %s", got, want)
	}
}
