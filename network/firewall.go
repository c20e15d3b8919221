package network

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// The anti-spoofing table of a network is a table of the bridge family:
// frames bridged from one port to another never pass the ip/ip6/inet hooks
// (only with br_netfilter's bridge-nf-call-* sysctls, a per-namespace
// setting lodge must not rely on), and only the bridge family sees ARP. One
// base chain at the bridge's prerouting hook jumps, per port, to a chain of
// that port ("port-VETH") that drops what the container may not send. Per
// port chains rather than a concatenated set: google/nftables builds them
// with plain expressions, one port's rules are added and removed as a unit,
// and `nft list table bridge lodge-NET` reads like the policy it is.

// FirewallTable is the name of network's nftables tables.
func FirewallTable(network string) string { return "lodge-" + network }

const spoofChain = "spoof"

// Port is what a container may send from one bridge port.
type Port struct {
	HostIf string           // the NIC's host end (HostVethName)
	MAC    net.HardwareAddr // the only source MAC allowed
	IPv4   netip.Addr       // the only IPv4 source; zero: none but DHCP's 0.0.0.0
	IPv6   netip.Addr       // allowed IPv6 source besides link-local and ::; zero: none
}

// Firewall edits the nftables tables of one network in one namespace.
type Firewall struct {
	conn  *nftables.Conn
	table *nftables.Table
}

// NewFirewall returns the firewall of network in the namespace of conn
// (nftables.New(), or nftables.New(nftables.WithNetNSFd(fd))).
func NewFirewall(conn *nftables.Conn, network string) *Firewall {
	return &Firewall{conn: conn, table: &nftables.Table{Name: FirewallTable(network), Family: nftables.TableFamilyBridge}}
}

// Ensure creates the table and its base chain if missing (idempotent).
func (f *Firewall) Ensure() error {
	f.conn.AddTable(f.table)
	f.conn.AddChain(f.base())
	if err := f.conn.Flush(); err != nil {
		return fmt.Errorf("nftables table bridge %s: %w", f.table.Name, err)
	}
	return nil
}

func (f *Firewall) base() *nftables.Chain {
	return &nftables.Chain{
		Name: spoofChain, Table: f.table, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRef(-200),
	}
}

// Delete removes the table and all ports' rules; a missing table is no error.
func (f *Firewall) Delete() error {
	f.conn.DelTable(f.table)
	if err := f.conn.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("delete nftables table bridge %s: %w", f.table.Name, err)
	}
	return nil
}

// SetPort installs (or replaces) the rules of one port, in one transaction.
func (f *Firewall) SetPort(p Port) error {
	if err := f.RemovePort(p.HostIf); err != nil {
		return err
	}
	ch := f.conn.AddChain(&nftables.Chain{Name: "port-" + p.HostIf, Table: f.table})
	for _, exprs := range portRules(p) {
		f.conn.AddRule(&nftables.Rule{Table: f.table, Chain: ch, Exprs: exprs})
	}
	f.conn.AddRule(&nftables.Rule{
		Table: f.table, Chain: f.base(), UserData: []byte(p.HostIf),
		Exprs: append(iifname(p.HostIf), jump(ch.Name)),
	})
	if err := f.conn.Flush(); err != nil {
		return fmt.Errorf("nftables rules of port %s: %w", p.HostIf, err)
	}
	return nil
}

// RemovePort removes one port's rules; missing ones are no error.
func (f *Firewall) RemovePort(hostIf string) error {
	rules, err := f.conn.GetRules(f.table, f.base())
	if err != nil {
		return fmt.Errorf("list rules of table bridge %s: %w", f.table.Name, err)
	}
	found := false
	for _, r := range rules {
		if string(r.UserData) == hostIf {
			found = true
			if err := f.conn.DelRule(r); err != nil {
				return err
			}
		}
	}
	if ch, err := f.conn.ListChain(f.table, "port-"+hostIf); err == nil && ch != nil {
		found = true
		f.conn.FlushChain(ch)
		f.conn.DelChain(ch)
	}
	if !found {
		return nil
	}
	if err := f.conn.Flush(); err != nil {
		return fmt.Errorf("remove nftables rules of port %s: %w", hostIf, err)
	}
	return nil
}

// portRules are the rules of a port's chain, in order:
//
//	ether saddr != MAC drop
//	ether type arp arp saddr ether != MAC drop
//	ether type arp arp saddr ip != { IPv4, 0.0.0.0 } drop
//	ether type arp accept
//	ether type ip udp dport 67 ip saddr 0.0.0.0 accept     (DHCP's first packets)
//	ether type ip ip saddr != IPv4 drop
//	ether type ip accept
//	ether type ip6 icmpv6 type nd-router-advert drop
//	ether type ip6 ip6 saddr != { IPv6, :: } ip6 saddr != fe80::/10 drop
//	ether type ip6 accept
//	drop                                                    (VLAN tags, PPPoE, ...)
func portRules(p Port) [][]expr.Any {
	drop, accept := verdict(expr.VerdictDrop), verdict(expr.VerdictAccept)
	ll, nh := expr.PayloadBaseLLHeader, expr.PayloadBaseNetworkHeader
	mac, v4, v6 := []byte(p.MAC), ipBytes(p.IPv4, 4), ipBytes(p.IPv6, 16)
	any4, any6 := make([]byte, 4), make([]byte, 16)
	linkLocal := netip.MustParseAddr("fe80::").AsSlice()
	arp, ip4, ip6 := etherType(ethARP), etherType(ethIPv4), etherType(ethIPv6)
	return [][]expr.Any{
		{load(ll, 6, 6), neq(mac), drop},
		cat(arp, []expr.Any{load(nh, 8, 6), neq(mac), drop}),
		cat(arp, []expr.Any{load(nh, 14, 4), neq(v4), neq(any4), drop}),
		cat(arp, []expr.Any{accept}),
		cat(ip4, []expr.Any{load(nh, 12, 4), eq(any4)}, l4(unix.IPPROTO_UDP, 2, be16(67)), []expr.Any{accept}),
		cat(ip4, []expr.Any{load(nh, 12, 4), neq(v4), drop}),
		cat(ip4, []expr.Any{accept}),
		cat(ip6, l4(unix.IPPROTO_ICMPV6, 0, []byte{134}), []expr.Any{drop}),
		cat(ip6, []expr.Any{load(nh, 8, 16), neq(v6), neq(any6)},
			fieldMaskedNot(nh, 8, prefixMask(10, 16), linkLocal), []expr.Any{drop}),
		cat(ip6, []expr.Any{accept}),
		{drop},
	}
}

// ipBytes is a's bytes, or all ones (an address no packet has as its
// source: broadcast) when a is not set, so that "!= a" matches everything.
func ipBytes(a netip.Addr, n int) []byte {
	if a.IsValid() {
		return a.AsSlice()
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = 0xff
	}
	return b
}

func prefixMask(bits, n int) []byte { return net.CIDRMask(bits, n*8) }
