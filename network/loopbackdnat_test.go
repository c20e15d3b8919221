package network

import (
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// TestLoopbackDNAT tries, in a private "host" namespace (no host setting is
// touched), the recipe for a port forward that works from the host's own
// loopback (docs/networking.md): DNAT at the output hook, route_localnet on
// lodge's bridge only, and SNAT of loopback sources leaving by that bridge.
// It is a recipe test, not lodge code yet: port forwards come next.
func TestLoopbackDNAT(t *testing.T) {
	needRoot(t)
	host := startNetNS(t)
	hh, err := netlink.NewHandleAt(netns.NsHandle(host.nsFD))
	if err != nil {
		t.Fatal(err)
	}
	defer hh.Close()
	lo, _ := hh.LinkByName("lo")
	hh.LinkSetUp(lo)
	gw, ctr := netip.MustParsePrefix("10.200.0.1/24"), netip.MustParsePrefix("10.200.0.2/24")
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "lodge-fwd"}}
	if err := hh.LinkAdd(br); err != nil {
		t.Fatal(err)
	}
	if err := hh.AddrAdd(br, &netlink.Addr{IPNet: ipNet(gw)}); err != nil {
		t.Fatal(err)
	}
	hh.LinkSetUp(br)
	c := startContainer(t)
	n := NIC{Container: "dnat", Name: "eth0", Bridge: br.Name, IPv4: ctr, Gateway4: gw.Addr()}
	if err := AddNIC(hh, c.nsFD, n); err != nil {
		t.Fatal(err)
	}
	listen(t, c, ctr.Addr())
	addLoopbackForward(t, host.nsFD, 18080, ctr.Addr(), 7777, br.Name, gw.Addr())
	loop := netip.MustParseAddr("127.0.0.1")
	dialLoop := func() error {
		return inNetNS(host.nsFD, func() error {
			conn, err := net.DialTimeout("tcp", netip.AddrPortFrom(loop, 18080).String(), time.Second)
			if err == nil {
				conn.Close()
			}
			return err
		})
	}
	err = dialLoop()
	t.Logf("without route_localnet: %v", err)
	if err == nil {
		t.Error("the forward from loopback worked without route_localnet")
	}
	setSysctl(t, host.nsFD, "/proc/sys/net/ipv4/conf/lodge-fwd/route_localnet", "1")
	if err := dialLoop(); err != nil {
		t.Errorf("with route_localnet on the bridge: %v", err)
	}
}

// addLoopbackForward adds, in nsFD:
//
//	table ip lodge-fwdtest {
//	  chain out  { type nat hook output priority -100;
//	               ip daddr 127.0.0.1 tcp dport PORT dnat to TO:TOPORT }
//	  chain post { type nat hook postrouting priority 100;
//	               oifname BRIDGE ip saddr 127.0.0.0/8 snat to GW }
//	}
func addLoopbackForward(t *testing.T, nsFD int, port uint16, to netip.Addr, toPort uint16, bridge string, gw netip.Addr) {
	t.Helper()
	conn, err := nftables.New(nftables.WithNetNSFd(nsFD))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseLasting()
	tb := conn.AddTable(&nftables.Table{Name: "lodge-fwdtest", Family: nftables.TableFamilyIPv4})
	out := conn.AddChain(&nftables.Chain{Name: "out", Table: tb, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest})
	post := conn.AddChain(&nftables.Chain{Name: "post", Table: tb, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource})
	nh := expr.PayloadBaseNetworkHeader
	conn.AddRule(&nftables.Rule{Table: tb, Chain: out, Exprs: cat(
		[]expr.Any{load(nh, 16, 4), eq(net.IPv4(127, 0, 0, 1).To4())},
		l4(unix.IPPROTO_TCP, 2, be16(port)),
		[]expr.Any{&expr.Immediate{Register: 1, Data: to.AsSlice()}, &expr.Immediate{Register: 2, Data: be16(toPort)},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true}})})
	conn.AddRule(&nftables.Rule{Table: tb, Chain: post, Exprs: cat(
		[]expr.Any{&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1}, eq(append([]byte(bridge), 0))},
		fieldMaskedNot(nh, 12, []byte{255, 0, 0, 0}, []byte{127, 0, 0, 0})[:2],
		[]expr.Any{eq([]byte{127, 0, 0, 0}), &expr.Immediate{Register: 1, Data: gw.AsSlice()},
			&expr.NAT{Type: expr.NATTypeSourceNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, Specified: true}})})
	if err := conn.Flush(); err != nil {
		t.Fatal(err)
	}
}

// setSysctl writes a sysctl of the namespace nsFD (its own interfaces only).
func setSysctl(t *testing.T, nsFD int, path, value string) {
	t.Helper()
	if err := inNetNS(nsFD, func() error { return os.WriteFile(path, []byte(value), 0o644) }); err != nil {
		t.Fatal(err)
	}
}
