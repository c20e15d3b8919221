package network

import (
	"net"
	"net/netip"
	"os/exec"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// dialFrom connects from c's namespace, from source src, to dst:7777.
func dialFrom(t *testing.T, c *container, src, dst netip.Addr) error {
	t.Helper()
	d := net.Dialer{Timeout: time.Second, LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
	return inNetNS(c.nsFD, func() error {
		conn, err := d.Dial("tcp", netip.AddrPortFrom(dst, 7777).String())
		if err == nil {
			conn.Close()
		}
		return err
	})
}

func nftConn(t *testing.T) *nftables.Conn {
	t.Helper()
	conn, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.CloseLasting() })
	return conn
}

// TestAntiSpoofing: with the network's anti-spoofing table, a container
// reaches another from its own MAC and addresses only; a spoofed IPv4 or
// IPv6 source or MAC does not get through, and does once its port's rules
// are removed. Deleting the table leaves nothing.
func TestAntiSpoofing(t *testing.T) {
	needRoot(t)
	h := hostHandle(t)
	bc := testNetwork(t, h)
	a, b := startContainer(t), startContainer(t)
	na, nb := addTestNIC(t, h, bc, a, "sa", 2), addTestNIC(t, h, bc, b, "sb", 3)
	fw := NewFirewall(nftConn(t), bc.Network)
	if err := fw.Ensure(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fw.Delete() })
	if err := fw.Ensure(); err != nil {
		t.Fatalf("ensure again: %v", err)
	}
	for _, n := range []NIC{na, nb} {
		if err := fw.SetPort(Port{HostIf: n.HostName(), MAC: n.HWAddr(), IPv4: n.IPv4.Addr(), IPv6: n.IPv6.Addr()}); err != nil {
			t.Fatal(err)
		}
	}
	logRuleset(t, FirewallTable(bc.Network))
	listen(t, b, nb.IPv4.Addr())
	listen(t, b, nb.IPv6.Addr())
	spoof4, spoof6 := hostAddr(bc.IPv4, 50), hostAddr(bc.IPv6, 50)
	addAddrs(t, a, spoof4, spoof6)
	for _, c := range []struct {
		src, dst netip.Addr
		ok       bool
	}{
		{na.IPv4.Addr(), nb.IPv4.Addr(), true}, {na.IPv6.Addr(), nb.IPv6.Addr(), true},
		{spoof4.Addr(), nb.IPv4.Addr(), false}, {spoof6.Addr(), nb.IPv6.Addr(), false},
	} {
		if err := dialFrom(t, a, c.src, c.dst); (err == nil) != c.ok {
			t.Errorf("from %s to %s: %v (want success %v)", c.src, c.dst, err, c.ok)
		}
	}
	setMAC(t, a, MAC("spoofed"))
	if err := dialFrom(t, a, na.IPv4.Addr(), nb.IPv4.Addr()); err == nil {
		t.Error("a spoofed MAC got through")
	}
	setMAC(t, a, na.HWAddr())
	if err := fw.RemovePort(na.HostName()); err != nil {
		t.Fatal(err)
	}
	if err := dialFrom(t, a, spoof4.Addr(), nb.IPv4.Addr()); err != nil {
		t.Errorf("without the port's rules the spoofed source is not let through (so what dropped it?): %v", err)
	}
	if err := fw.Delete(); err != nil {
		t.Fatal(err)
	}
	tables, _ := nftConn(t).ListTablesOfFamily(nftables.TableFamilyBridge)
	for _, tb := range tables {
		if tb.Name == FirewallTable(bc.Network) {
			t.Errorf("table %s still exists", tb.Name)
		}
	}
	if err := fw.Delete(); err != nil {
		t.Errorf("delete twice: %v", err)
	}
}

// logRuleset logs nft's listing of the table (read-only) if nft is installed.
func logRuleset(t *testing.T, table string) {
	if _, err := exec.LookPath("nft"); err == nil {
		out, err := exec.Command("nft", "list", "table", "bridge", table).CombinedOutput()
		t.Logf("nft list table bridge %s: %v\n%s", table, err, out)
	}
}

// addAddrs adds addresses to eth0 in c (as a container's root could).
func addAddrs(t *testing.T, c *container, ps ...netip.Prefix) {
	t.Helper()
	inside, err := netlink.NewHandleAt(netns.NsHandle(c.nsFD))
	if err != nil {
		t.Fatal(err)
	}
	defer inside.Close()
	link, err := inside.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if err := inside.AddrAdd(link, &netlink.Addr{IPNet: ipNet(p), Flags: unix.IFA_F_NODAD}); err != nil {
			t.Fatal(err)
		}
	}
}

func setMAC(t *testing.T, c *container, mac net.HardwareAddr) {
	t.Helper()
	inside, err := netlink.NewHandleAt(netns.NsHandle(c.nsFD))
	if err != nil {
		t.Fatal(err)
	}
	defer inside.Close()
	link, err := inside.LinkByName("eth0")
	if err == nil {
		err = inside.LinkSetHardwareAddr(link, mac)
	}
	if err != nil {
		t.Fatal(err)
	}
}
