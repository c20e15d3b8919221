package network

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// addTestNIC gives c a NIC on the network's bridge with the i-th address
// of both subnets and default routes via the bridge.
func addTestNIC(t *testing.T, h *netlink.Handle, bc BridgeConfig, c *container, name string, i int) NIC {
	t.Helper()
	n := NIC{
		Container: unique(name), Name: "eth0", Bridge: BridgeName(bc.Network), MTU: 1450,
		IPv4: hostAddr(bc.IPv4, i), IPv6: hostAddr(bc.IPv6, i),
		Gateway4: Gateway(bc.IPv4).Addr(), Gateway6: Gateway(bc.IPv6).Addr(),
	}
	if err := AddNIC(h, c.nsFD, n); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := RemoveNIC(h, n.Container, n.Name); err != nil {
			t.Error(err)
		}
	})
	return n
}

// listen opens a TCP echo-once server in c's namespace on addr.
func listen(t *testing.T, c *container, addr netip.Addr) net.Listener {
	t.Helper()
	var l net.Listener
	err := inNetNS(c.nsFD, func() (err error) {
		l, err = net.Listen("tcp", netip.AddrPortFrom(addr, 7777).String())
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
			io.Copy(conn, conn)
			conn.Close()
		}
	}()
	return l
}

// dial connects from c's namespace to addr:7777, sends a line and expects it back.
func dial(t *testing.T, c *container, addr netip.Addr) error {
	t.Helper()
	var conn net.Conn
	err := inNetNS(c.nsFD, func() (err error) {
		conn, err = net.DialTimeout("tcp", netip.AddrPortFrom(addr, 7777).String(), 3*time.Second)
		return err
	})
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := conn.Write([]byte("hello\n")); err != nil {
		return err
	}
	buf := make([]byte, 6)
	if _, err := io.ReadFull(conn, buf); err != nil {
		return err
	}
	if string(buf) != "hello\n" {
		return fmt.Errorf("echo %q", buf)
	}
	return nil
}

// TestNICsTalk puts two "containers" (user+network namespaces) on one
// bridge and has them talk over IPv4 and IPv6; everything goes afterwards.
func TestNICsTalk(t *testing.T) {
	needRoot(t)
	h := hostHandle(t)
	bc := testNetwork(t, h)
	a, b := startContainer(t), startContainer(t)
	na := addTestNIC(t, h, bc, a, "ta", 2)
	nb := addTestNIC(t, h, bc, b, "tb", 3)
	checkPeer(t, a, na)
	listen(t, b, nb.IPv4.Addr())
	listen(t, b, nb.IPv6.Addr())
	for _, addr := range []netip.Addr{nb.IPv4.Addr(), nb.IPv6.Addr()} {
		if err := dial(t, a, addr); err != nil {
			t.Errorf("%s to %s: %v", na.Container, addr, err)
		}
	}
	for _, n := range []NIC{na, nb} {
		if err := RemoveNIC(h, n.Container, n.Name); err != nil {
			t.Fatal(err)
		}
		if _, err := h.LinkByName(n.HostName()); err == nil {
			t.Errorf("%s still exists", n.HostName())
		}
	}
	inside, _ := netlink.NewHandleAt(netns.NsHandle(a.nsFD))
	defer inside.Close()
	if _, err := inside.LinkByName("eth0"); err == nil {
		t.Error("eth0 is still in the container after RemoveNIC")
	}
}

// checkPeer checks the container end's name, MAC, MTU, state and routes.
func checkPeer(t *testing.T, c *container, n NIC) {
	t.Helper()
	inside, err := netlink.NewHandleAt(netns.NsHandle(c.nsFD))
	if err != nil {
		t.Fatal(err)
	}
	defer inside.Close()
	link, err := inside.LinkByName(n.Name)
	if err != nil {
		t.Fatal(err)
	}
	at := link.Attrs()
	if at.HardwareAddr.String() != n.HWAddr().String() || at.MTU != n.MTU || at.Flags&net.FlagUp == 0 {
		t.Errorf("container end: mac %s mtu %d flags %v; want %s %d up", at.HardwareAddr, at.MTU, at.Flags, n.HWAddr(), n.MTU)
	}
	routes, _ := inside.RouteList(link, netlink.FAMILY_ALL)
	gws := 0
	for _, r := range routes {
		if r.Gw != nil {
			gws++
		}
	}
	if gws != 2 {
		t.Errorf("want default routes via the bridge for IPv4 and IPv6, got %v", routes)
	}
	host, _ := netlink.LinkByName(n.HostName())
	if host == nil || host.Attrs().Alias != NICAlias(n.Container, n.Name) {
		t.Errorf("host end %s: %v", n.HostName(), host)
	}
}

// TestNICGoesWithNamespace: when the namespace's last process dies (and no
// descriptor holds it), the kernel destroys it and the veth pair with it:
// the host end disappears without lodge doing anything.
func TestNICGoesWithNamespace(t *testing.T) {
	needRoot(t)
	h := hostHandle(t)
	bc := testNetwork(t, h)
	c := startContainer(t)
	n := NIC{Container: unique("tdie"), Name: "eth0", Bridge: BridgeName(bc.Network), IPv4: hostAddr(bc.IPv4, 2)}
	if err := AddNIC(h, c.nsFD, n); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { RemoveNIC(h, n.Container, n.Name) })
	c.kill()
	start := time.Now()
	for {
		_, err := h.LinkByName(n.HostName())
		var notFound netlink.LinkNotFoundError
		if errors.As(err, &notFound) {
			t.Logf("host end gone %v after the process died", time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("host end %s still there 30 s after the namespace's process died: %v", n.HostName(), err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAddNICFailureLeavesNothing: a NIC whose name is taken in the
// container fails, and its host end is removed again.
func TestAddNICFailureLeavesNothing(t *testing.T) {
	needRoot(t)
	h := hostHandle(t)
	bc := testNetwork(t, h)
	c := startContainer(t)
	n := NIC{Container: unique("tfail"), Name: "lo", Bridge: BridgeName(bc.Network)}
	err := AddNIC(h, c.nsFD, n)
	t.Logf("a NIC named lo: %v", err)
	if err == nil {
		RemoveNIC(h, n.Container, n.Name)
		t.Fatal("a NIC named lo was added")
	}
	n.Name, n.IPv4 = "eth0", netip.MustParsePrefix("10.255.255.1/8")
	n.Gateway4 = netip.MustParseAddr("192.0.2.99") // unreachable from 10/8: the route fails
	err = AddNIC(h, c.nsFD, n)
	t.Logf("route via an off-link gateway: %v", err)
	if err == nil {
		RemoveNIC(h, n.Container, n.Name)
		t.Fatal("a default route via an off-link gateway was accepted")
	}
	if _, err := h.LinkByName(n.HostName()); err == nil {
		t.Errorf("host end %s left after a failed AddNIC", n.HostName())
	}
}

// TestOwnedLinksAfterDeath: when a container with an egress limit dies on
// its own, the kernel takes the veth pair, but the ifb stays (it lives in
// the host's namespace): OwnedLinks finds it, RemoveNIC removes it.
func TestOwnedLinksAfterDeath(t *testing.T) {
	needRoot(t)
	h := hostHandle(t)
	bc := testNetwork(t, h)
	c := startContainer(t)
	n := addTestNIC(t, h, bc, c, "own", 2)
	if err := SetLimits(h, n.Container, n.Name, Limits{Egress: 10e6}); err != nil {
		t.Fatal(err)
	}
	owned := func() []string {
		links, err := OwnedLinks(h)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, l := range links {
			if a := l.Attrs().Alias; a == NICAlias(n.Container, n.Name) || a == BridgeAlias(bc.Network) {
				names = append(names, l.Type()+":"+l.Attrs().Name)
			}
		}
		return names
	}
	t.Logf("running: %v", owned())
	c.kill()
	for start := time.Now(); time.Since(start) < 30*time.Second; time.Sleep(10 * time.Millisecond) {
		if _, err := h.LinkByName(n.HostName()); err != nil {
			break
		}
	}
	left := owned()
	t.Logf("after the container died: %v", left)
	want := "bridge:" + BridgeName(bc.Network) + " ifb:" + IfbName(n.Container, n.Name)
	if strings.Join(left, " ") != want {
		t.Errorf("after death: %v, want %s", left, want)
	}
	if err := RemoveNIC(h, n.Container, n.Name); err != nil {
		t.Fatal(err)
	}
	if left := owned(); len(left) != 1 {
		t.Errorf("after RemoveNIC: %v", left)
	}
}
