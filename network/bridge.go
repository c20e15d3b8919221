package network

import (
	"errors"
	"fmt"
	"net/netip"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// BridgeConfig describes a network's bridge.
type BridgeConfig struct {
	Network string       // the network's name; the bridge is BridgeName(Network)
	IPv4    netip.Prefix // the subnet (a /24); the bridge takes Gateway(IPv4)
	IPv6    netip.Prefix // the subnet (a /64), or the zero Prefix for none
	MTU     int          // 0 for the kernel's default (1500)
}

// EnsureBridge creates the network's bridge if it is missing, or adopts the
// one that exists if its alias names the same network, and makes sure it
// has its addresses and is up. Calling it again changes nothing.
//
// The bridge gets a fixed MAC (else it takes the lowest of its ports' and
// changes as containers come and go), its IPv6 address without duplicate
// address detection (else it stays "tentative" for a second or two) and
// accept_ra=0, so that a container's router advertisement cannot give the
// host a route. h must be bound to the calling process's network namespace
// (the host's): accept_ra is set through /proc/sys.
func EnsureBridge(h *netlink.Handle, c BridgeConfig) (*netlink.Bridge, error) {
	name := BridgeName(c.Network)
	br, err := bridgeByName(h, name, c.Network)
	if err != nil {
		return nil, err
	}
	if br == nil {
		attrs := netlink.NewLinkAttrs()
		attrs.Name, attrs.MTU, attrs.HardwareAddr = name, c.MTU, MAC("bridge/"+c.Network)
		br = &netlink.Bridge{LinkAttrs: attrs}
		if err := h.LinkAdd(br); err != nil {
			return nil, fmt.Errorf("create bridge %s: %w", name, err)
		}
		if err := h.LinkSetAlias(br, BridgeAlias(c.Network)); err != nil {
			h.LinkDel(br)
			return nil, fmt.Errorf("set alias of bridge %s: %w", name, err)
		}
	}
	if err := configureBridge(h, br, c); err != nil {
		return nil, fmt.Errorf("bridge %s of network %q: %w", name, c.Network, err)
	}
	return br, nil
}

func configureBridge(h *netlink.Handle, br *netlink.Bridge, c BridgeConfig) error {
	if c.IPv6.IsValid() {
		// Our own interface's sysctl, not the host's: safe to set.
		p := "/proc/sys/net/ipv6/conf/" + br.Name + "/accept_ra"
		if err := os.WriteFile(p, []byte("0"), 0o644); err != nil {
			return fmt.Errorf("turn off accept_ra: %w", err)
		}
	}
	for _, p := range []netip.Prefix{c.IPv4, c.IPv6} {
		if !p.IsValid() {
			continue
		}
		addr := &netlink.Addr{IPNet: ipNet(Gateway(p))}
		if p.Addr().Is6() {
			addr.Flags = unix.IFA_F_NODAD
		}
		if err := h.AddrReplace(br, addr); err != nil {
			return fmt.Errorf("add address %s: %w", Gateway(p), err)
		}
	}
	if err := h.LinkSetUp(br); err != nil {
		return fmt.Errorf("bring up: %w", err)
	}
	return nil
}

// bridgeByName returns the bridge called name, nil if there is none, or an
// error if the name is taken by something that is not network's bridge.
func bridgeByName(h *netlink.Handle, name, network string) (*netlink.Bridge, error) {
	link, err := h.LinkByName(name)
	var notFound netlink.LinkNotFoundError
	if errors.As(err, &notFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up bridge %s: %w", name, err)
	}
	br, ok := link.(*netlink.Bridge)
	if !ok || link.Attrs().Alias != BridgeAlias(network) {
		return nil, fmt.Errorf("interface %s exists and is not the bridge of network %q (type %s, alias %q): rename the network or remove the interface",
			name, network, link.Type(), link.Attrs().Alias)
	}
	return br, nil
}

// DeleteBridge removes the network's bridge; a missing one is no error.
// Its addresses and routes go with it; its ports (veths) stay, detached.
func DeleteBridge(h *netlink.Handle, network string) error {
	br, err := bridgeByName(h, BridgeName(network), network)
	if err != nil || br == nil {
		return err
	}
	if err := h.LinkDel(br); err != nil {
		return fmt.Errorf("delete bridge %s: %w", br.Name, err)
	}
	return nil
}
