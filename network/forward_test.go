package network

import (
	"context"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// TestForwards installs a network's NAT table in a private "host" namespace
// (never the machine's own) with a bridge and a container on a veth, and
// reaches a TCP server in the container through the forward from the host
// namespace's loopback and from its bridge address. The masquerade rule is
// only checked in the rule list of that namespace, which has no way out.
func TestForwards(t *testing.T) {
	needRoot(t)
	host := startNetNS(t)
	hh, err := netlink.NewHandleAt(netns.NsHandle(host.nsFD))
	if err != nil {
		t.Fatal(err)
	}
	defer hh.Close()
	lo, _ := hh.LinkByName("lo")
	hh.LinkSetUp(lo)
	subnet := netip.MustParsePrefix("10.201.0.0/24")
	bc := BridgeConfig{Network: "fwdtest", IPv4: subnet}
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: BridgeName(bc.Network)}}
	if err := hh.LinkAdd(br); err != nil {
		t.Fatal(err)
	}
	subnet6 := netip.MustParsePrefix("fd00:201::/64")
	gw, gw6 := Gateway(subnet), Gateway(subnet6)
	for _, a := range []netip.Prefix{gw, gw6} {
		if err := hh.AddrAdd(br, &netlink.Addr{IPNet: ipNet(a), Flags: unix.IFA_F_NODAD}); err != nil {
			t.Fatal(err)
		}
	}
	hh.LinkSetUp(br)
	c := startContainer(t)
	ctr, ctr6 := hostAddr(subnet, 5), hostAddr(subnet6, 5)
	if err := AddNIC(hh, c.nsFD, NIC{Container: "fwd", Name: "eth0", Bridge: br.Name, IPv4: ctr, Gateway4: gw.Addr(), IPv6: ctr6, Gateway6: gw6.Addr()}); err != nil {
		t.Fatal(err)
	}
	echoServer(t, c, netip.AddrPortFrom(ctr.Addr(), 7777))
	echoServer(t, c, netip.AddrPortFrom(ctr6.Addr(), 7777))

	conn, err := nftables.New(nftables.WithNetNSFd(host.nsFD))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseLasting()
	nat := NewNAT(conn, bc.Network)
	ensure := func(masq bool) {
		t.Helper()
		if err := inNetNS(host.nsFD, func() error { return nat.Ensure(br.Name, subnet, netip.Prefix{}, masq) }); err != nil {
			t.Fatal(err)
		}
	}
	ensure(false)
	ensure(false) // idempotent
	post, err := conn.GetRules(nat.table, nat.postrouting())
	if err != nil || len(post) != 2 {
		t.Fatalf("postrouting after two Ensure: %d rules, %v; want the loopback and hairpin SNATs", len(post), err)
	}
	if m, err := nat.Masquerades(); err != nil || m {
		t.Fatalf("masquerade without asking: %v %v", m, err)
	}

	fw := []Forward{
		{Proto: "tcp", Listen: netip.IPv4Unspecified(), HostPort: 18080, Target: ctr.Addr(), TargetPort: 7777},
		{Proto: "tcp", Listen: netip.MustParseAddr("127.0.0.1"), HostPort: 18081, Target: ctr.Addr(), TargetPort: 7777},
		{Proto: "udp", Listen: netip.IPv4Unspecified(), HostPort: 18080, Target: ctr.Addr(), TargetPort: 53},
		{Proto: "tcp", Listen: netip.IPv6Unspecified(), HostPort: 18080, Target: ctr6.Addr(), TargetPort: 7777},
	}
	if err := nat.SetForwards("fwd", fw); err != nil {
		t.Fatal(err)
	}
	if err := nat.SetForwards("fwd", fw); err != nil { // replaces, no duplicates
		t.Fatal(err)
	}
	for _, ch := range []*nftables.Chain{nat.prerouting(), nat.output()} {
		if rules, _ := conn.GetRules(nat.table, ch); len(rules) != 1 {
			t.Errorf("%s has %d rules after SetForwards twice, want 1 jump", ch.Name, len(rules))
		}
	}
	if names, err := nat.Forwards(); err != nil || len(names) != 1 || names[0] != "fwd" {
		t.Errorf("Forwards() = %v, %v", names, err)
	}
	echo := func(addr netip.AddrPort, works bool) error { return echoFrom(t, host, addr, works) }
	targets := []netip.AddrPort{
		netip.MustParseAddrPort("127.0.0.1:18080"),
		netip.AddrPortFrom(gw.Addr(), 18080),
		netip.MustParseAddrPort("127.0.0.1:18081"),
		netip.AddrPortFrom(gw6.Addr(), 18080),
	}
	for _, a := range targets {
		if err := echo(a, true); err != nil {
			t.Errorf("through the forward at %s: %v", a, err)
		}
	}
	// Hairpin: a neighbour on the bridge reaches the forward through the
	// bridge address, and the container itself through it too. The DNATed
	// packet is routed back out of the bridge: forwarding on, in the private
	// namespace only (it dies with it).
	setSysctl(t, host.nsFD, "/proc/sys/net/ipv4/ip_forward", "1")
	c2 := startContainer(t)
	if err := AddNIC(hh, c2.nsFD, NIC{Container: "fwd2", Name: "eth0", Bridge: br.Name, IPv4: hostAddr(subnet, 6), Gateway4: gw.Addr()}); err != nil {
		t.Fatal(err)
	}
	// A container reaching its own forward: with br_netfilter the DNATed
	// frame is bridged back out of the port it came in by, which a bridge
	// does only for a port in hairpin mode.
	if l, err := hh.LinkByName(HostVethName("fwd", "eth0")); err != nil {
		t.Fatal(err)
	} else if err := hh.LinkSetHairpin(l, true); err != nil {
		t.Fatal(err)
	}
	for i, from := range []*container{c2, c} {
		if err := echoFrom(t, from, netip.AddrPortFrom(gw.Addr(), 18080), true); err != nil {
			t.Errorf("hairpin from %s to %s:18080: %v", []string{"a neighbour", "the container itself"}[i], gw.Addr(), err)
		}
	}
	if err := echo(netip.AddrPortFrom(gw.Addr(), 18081), false); err == nil {
		t.Error("the forward that listens on 127.0.0.1 answered at the bridge address")
	}

	if err := nat.RemoveForwards("fwd"); err != nil {
		t.Fatal(err)
	}
	if err := nat.RemoveForwards("fwd"); err != nil {
		t.Fatalf("second RemoveForwards: %v", err)
	}
	for _, a := range targets {
		if err := echo(a, false); err == nil {
			t.Errorf("%s still answers after RemoveForwards", a)
		}
	}

	ensure(true)
	if m, err := nat.Masquerades(); err != nil || !m {
		t.Errorf("no masquerade rule after Ensure(masquerade): %v %v", m, err)
	}
	ensure(false)
	if m, _ := nat.Masquerades(); m {
		t.Error("the masquerade rule stayed after Ensure without it")
	}
	if err := nat.Delete(); err != nil {
		t.Fatal(err)
	}
	if err := nat.Delete(); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
	if err := nat.RemoveForwards("fwd"); err != nil {
		t.Fatalf("RemoveForwards without a table: %v", err)
	}
}

func TestForwardRuleRefuses(t *testing.T) {
	ctr := netip.MustParseAddr("10.1.2.3")
	for _, f := range []Forward{
		{Proto: "sctp", Listen: netip.IPv4Unspecified(), HostPort: 1, Target: ctr, TargetPort: 1},
		{Proto: "tcp", Listen: netip.IPv6Unspecified(), HostPort: 1, Target: ctr, TargetPort: 1},
		{Proto: "tcp", Listen: netip.IPv4Unspecified(), HostPort: 0, Target: ctr, TargetPort: 1},
	} {
		if _, err := forwardRule(f); err == nil {
			t.Errorf("%v accepted", f)
		}
	}
}

// echoServer answers each connection's first 6 bytes, in c's namespace (a
// plain TCP listener, each connection on its own goroutine).
func echoServer(t *testing.T, c *container, at netip.AddrPort) {
	t.Helper()
	var l net.Listener
	err := inNetNS(c.nsFD, func() (err error) {
		lc := net.ListenConfig{}
		lc.SetMultipathTCP(false)
		l, err = lc.Listen(context.Background(), "tcp", at.String())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(5 * time.Second))
				buf := make([]byte, 6)
				if _, err := io.ReadFull(conn, buf); err == nil {
					conn.Write(buf)
				}
			}()
		}
	}()
}

// echoFrom sends a line from c's namespace to addr and expects it back.
// A connection that should work gets 3 s (a fresh port may lose the first
// SYN, which TCP sends again after 1 s); one that should fail, 1 s.
func echoFrom(t *testing.T, c *container, addr netip.AddrPort, works bool) error {
	t.Helper()
	timeout := time.Second
	if works {
		timeout = 3 * time.Second
	}
	return inNetNS(c.nsFD, func() error {
		conn, err := net.DialTimeout("tcp", addr.String(), timeout)
		if err != nil {
			return err
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := conn.Write([]byte("hello\n")); err != nil {
			return err
		}
		buf := make([]byte, 6)
		_, err = io.ReadFull(conn, buf)
		return err
	})
}
