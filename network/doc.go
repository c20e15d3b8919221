// Package network holds lodge's network devices: the subnet allocator, the
// per-network bridge, a container's NIC (a veth pair whose peer lives in the
// container's network namespace), the nftables anti-spoofing table, a
// read-only check of the host's FORWARD rules and tc bandwidth limits.
//
// Everything goes through netlink (github.com/vishvananda/netlink) and
// github.com/google/nftables; nothing shells out. Functions that act in a
// network namespace take a *netlink.Handle bound to it (netlink.NewHandleAt)
// or its descriptor, and never move the calling thread. docs/networking.md
// has the recipes, the decisions and what the tests verified.
//
// Everything lodge creates carries a name of its own scheme (names.go) and an
// interface alias starting with "lodge:", so that leftovers of a container
// that died with its monitor can be found and removed (OwnedLinks).
package network
