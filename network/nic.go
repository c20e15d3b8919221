package network

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"lodge/internal/revert"
)

// NIC is one network interface of a container on a bridge.
type NIC struct {
	Container string           // the container's name
	Name      string           // the name inside the container, e.g. "eth0"
	Bridge    string           // the host bridge the host end joins
	MAC       net.HardwareAddr // the container end's MAC; nil for MAC(Container+"/"+Name)
	MTU       int              // both ends; 0 for the kernel's default
	IPv4      netip.Prefix     // static address with the subnet's length, or zero (DHCP)
	IPv6      netip.Prefix     // static address with the subnet's length, or zero
	Gateway4  netip.Addr       // default route via it if IPv4 is set and it is valid
	Gateway6  netip.Addr       // default route via it if IPv6 is set and it is valid
}

// HostName is the name of the NIC's host end.
func (n NIC) HostName() string { return HostVethName(n.Container, n.Name) }

// HWAddr is the container end's MAC.
func (n NIC) HWAddr() net.HardwareAddr {
	if n.MAC != nil {
		return n.MAC
	}
	return MAC(n.Container + "/" + n.Name)
}

// AddNIC creates the NIC as a veth pair whose host end (HostName) joins the
// bridge and whose peer is created directly in the network namespace nsFD
// (an open /proc/PID/ns/net) under its final name and MAC: no temporary
// name in the host's namespace and no rename. The peer's addresses, default
// routes and link state are then set from the host through a netlink handle
// bound to that namespace. On failure nothing is left behind.
func AddNIC(host *netlink.Handle, nsFD int, n NIC) error {
	br, err := host.LinkByName(n.Bridge)
	if err != nil {
		return fmt.Errorf("nic %s of %s: bridge %s: %w", n.Name, n.Container, n.Bridge, err)
	}
	r := revert.New()
	defer r.Fail()
	veth, err := addVeth(host, n, br.Attrs().Index, n.Name, netlink.NsFd(nsFD))
	if err != nil {
		return fmt.Errorf("nic %s of %s: %w", n.Name, n.Container, err)
	}
	r.Add(func() { host.LinkDel(veth) })
	if err := configurePeer(nsFD, n); err != nil {
		return fmt.Errorf("nic %s of %s: in the container: %w", n.Name, n.Container, err)
	}
	r.Success()
	return nil
}

// AddRestoreNIC creates the NIC's veth pair for a restore by CRIU, which
// makes the container's network namespace itself: the host end as AddNIC
// makes it, the container end in the host's namespace under
// RestoreVethName, with its final MAC, for CRIU to move into the restored
// namespace (its external netdev[NAME]:RESTORENAME). Its addresses and
// routes come from CRIU's images. On failure nothing is left behind.
func AddRestoreNIC(host *netlink.Handle, n NIC) error {
	br, err := host.LinkByName(n.Bridge)
	if err != nil {
		return fmt.Errorf("nic %s of %s: bridge %s: %w", n.Name, n.Container, n.Bridge, err)
	}
	if _, err := addVeth(host, n, br.Attrs().Index, RestoreVethName(n.Container, n.Name), nil); err != nil {
		return fmt.Errorf("nic %s of %s: %w", n.Name, n.Container, err)
	}
	return nil
}

// addVeth creates the veth pair: the host end on the bridge, up; the peer
// named peerName with the NIC's MAC, in namespace peerNS (nil: the host's).
func addVeth(host *netlink.Handle, n NIC, bridge int, peerName string, peerNS any) (*netlink.Veth, error) {
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.MTU, attrs.MasterIndex = n.HostName(), n.MTU, bridge
	veth := &netlink.Veth{
		LinkAttrs: attrs, PeerName: peerName, PeerHardwareAddr: n.HWAddr(),
		PeerNamespace: peerNS, PeerMTU: uint32(n.MTU),
	}
	if err := host.LinkAdd(veth); err != nil {
		return nil, fmt.Errorf("create veth %s (peer %s): %w", attrs.Name, peerName, err)
	}
	if err := host.LinkSetAlias(veth, NICAlias(n.Container, n.Name)); err != nil {
		host.LinkDel(veth)
		return nil, fmt.Errorf("set alias of %s: %w", attrs.Name, err)
	}
	if err := host.LinkSetUp(veth); err != nil {
		host.LinkDel(veth)
		return nil, fmt.Errorf("bring up %s: %w", attrs.Name, err)
	}
	return veth, nil
}

// configurePeer sets the container end's addresses and routes and brings
// it up, through a handle bound to the container's network namespace. IPv6
// addresses skip duplicate address detection (they are lodge's to give).
func configurePeer(nsFD int, n NIC) error {
	h, err := netlink.NewHandleAt(netns.NsHandle(nsFD))
	if err != nil {
		return fmt.Errorf("netlink handle: %w", err)
	}
	defer h.Close() // the handle's socket pins the namespace while open
	link, err := h.LinkByName(n.Name)
	if err != nil {
		return err
	}
	for _, p := range []netip.Prefix{n.IPv4, n.IPv6} {
		if !p.IsValid() {
			continue
		}
		addr := &netlink.Addr{IPNet: ipNet(p)}
		if p.Addr().Is6() {
			addr.Flags = unix.IFA_F_NODAD
		}
		if err := h.AddrAdd(link, addr); err != nil {
			return fmt.Errorf("add address %s: %w", p, err)
		}
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("bring up: %w", err)
	}
	return addDefaultRoutes(h, link, n)
}

func addDefaultRoutes(h *netlink.Handle, link netlink.Link, n NIC) error {
	for _, gw := range []struct {
		addr netip.Addr
		set  bool
	}{{n.Gateway4, n.IPv4.IsValid()}, {n.Gateway6, n.IPv6.IsValid()}} {
		if !gw.set || !gw.addr.IsValid() {
			continue
		}
		route := &netlink.Route{LinkIndex: link.Attrs().Index, Gw: gw.addr.AsSlice()}
		if err := h.RouteReplace(route); err != nil {
			return fmt.Errorf("default route via %s: %w", gw.addr, err)
		}
	}
	return nil
}

// RemoveNIC deletes the NIC's host end, which takes the peer with it, and
// its ifb (Limits); missing ones are no error (the container's namespace
// died and took the pair).
func RemoveNIC(host *netlink.Handle, container, name string) error {
	if err := removeIfb(host, container, name); err != nil {
		return fmt.Errorf("delete ifb of %s's %s: %w", container, name, err)
	}
	link, err := host.LinkByName(HostVethName(container, name))
	var notFound netlink.LinkNotFoundError
	if errors.As(err, &notFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := host.LinkDel(link); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete %s: %w", link.Attrs().Name, err)
	}
	return nil
}

// OwnedLinks lists the links of h's namespace whose alias marks them as
// lodge's (bridges, veth host ends, ifbs): what a sweep after a crash
// compares with the networks and containers that should exist.
func OwnedLinks(h *netlink.Handle) ([]netlink.Link, error) {
	links, err := h.LinkList()
	if err != nil {
		return nil, err
	}
	var out []netlink.Link
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Alias, AliasPrefix) {
			out = append(out, l)
		}
	}
	return out, nil
}
