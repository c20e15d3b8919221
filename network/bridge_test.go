package network

import (
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
)

// TestBridgeLifecycle creates a network's bridge on the host, ensures it
// again (no change), and deletes it: no link, address or route is left.
func TestBridgeLifecycle(t *testing.T) {
	needRoot(t)
	h := hostHandle(t)
	c := testNetwork(t, h) // created; DeleteBridge also runs at cleanup (then a no-op)
	br, err := EnsureBridge(h, c)
	if err != nil {
		t.Fatalf("ensure again: %v", err)
	}
	addrs, err := h.AddrList(br, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range addrs {
		if p, _ := prefixOf(a.IPNet); !p.Addr().IsLinkLocalUnicast() {
			got = append(got, netip.PrefixFrom(netip.MustParseAddr(a.IP.String()), p.Bits()).String())
		}
	}
	want := []string{Gateway(c.IPv4).String(), Gateway(c.IPv6).String()}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("bridge %s has addresses %v after two ensures, want %v", br.Name, got, want)
	}
	if ra, _ := os.ReadFile("/proc/sys/net/ipv6/conf/" + br.Name + "/accept_ra"); strings.TrimSpace(string(ra)) != "0" {
		t.Errorf("accept_ra on %s is %q", br.Name, ra)
	}
	if br.Attrs().HardwareAddr.String() != MAC("bridge/"+c.Network).String() {
		t.Errorf("bridge MAC %s", br.Attrs().HardwareAddr)
	}
	if err := DeleteBridge(h, c.Network); err != nil {
		t.Fatal(err)
	}
	if _, err := h.LinkByName(br.Name); err == nil {
		t.Errorf("bridge %s still exists", br.Name)
	}
	used, _ := UsedPrefixes(h)
	for _, p := range used {
		if p.Overlaps(c.IPv4) || p.Overlaps(c.IPv6) {
			t.Errorf("%v still routed or addressed after delete", p)
		}
	}
	if err := DeleteBridge(h, c.Network); err != nil {
		t.Errorf("delete twice: %v", err)
	}
}

// TestBridgeRefusesForeignName: an interface that has the bridge's name but
// is not lodge's bridge of that network is refused.
func TestBridgeRefusesForeignName(t *testing.T) {
	needRoot(t)
	h := hostHandle(t)
	attrs := netlink.NewLinkAttrs()
	network := unique("f")
	attrs.Name = BridgeName(network)
	// (a veth: this kernel has no dummy driver)
	foreign := &netlink.Veth{LinkAttrs: attrs, PeerName: attrs.Name + "p"}
	if err := h.LinkAdd(foreign); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.LinkDel(foreign) })
	_, err := EnsureBridge(h, BridgeConfig{Network: network})
	if err == nil || !strings.Contains(err.Error(), "is not the bridge") {
		t.Errorf("EnsureBridge over a veth: %v", err)
	}
	if err := DeleteBridge(h, network); err == nil {
		t.Error("DeleteBridge removed a foreign interface")
	}
}
