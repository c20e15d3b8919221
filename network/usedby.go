package network

import (
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// UsedBy describes what in the network namespace of h overlaps p, one entry
// per route or address, e.g. "route 10.1.0.0/16 dev eth1 (table 254)" or
// "address 10.1.2.3/24 on eth1": the reason a subnet is refused. Default
// routes are left out, as UsedPrefixes leaves them out.
func UsedBy(h *netlink.Handle, p netip.Prefix) ([]string, error) {
	names := map[int]string{}
	if links, err := h.LinkList(); err == nil {
		for _, l := range links {
			names[l.Attrs().Index] = l.Attrs().Name
		}
	}
	dev := func(index int) string {
		if n, ok := names[index]; ok {
			return n
		}
		return fmt.Sprintf("index %d", index)
	}
	var out []string
	routes, err := h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	for _, r := range routes {
		if d, ok := prefixOf(r.Dst); ok && d.Bits() > 0 && d.Overlaps(p) {
			out = append(out, fmt.Sprintf("route %s dev %s (table %d)", d, dev(r.LinkIndex), r.Table))
		}
	}
	addrs, err := h.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	for _, a := range addrs {
		if d, ok := prefixOf(a.IPNet); ok && d.Overlaps(p) {
			out = append(out, fmt.Sprintf("address %s on %s", a.IPNet, dev(a.LinkIndex)))
		}
	}
	return out, nil
}
