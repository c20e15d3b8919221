package network

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Port forwards and masquerade of a network live in a table of the inet
// family, "lodge-nat-NET", beside the bridge family's anti-spoofing table:
//
//	table inet lodge-nat-NET {
//	  chain prerouting  { type nat hook prerouting priority dstnat;    # from other hosts
//	                      jump fwd-C ... }                               # one jump per container
//	  chain output      { type nat hook output priority -100;           # from the host itself
//	                      jump fwd-C ... }
//	  chain postrouting { type nat hook postrouting priority srcnat;
//	    meta nfproto ipv4 oifname BR ip saddr 127.0.0.0/8 snat ip to GW4
//	    meta nfproto ipv4 oifname BR ip saddr SUBNET4 ct status dnat snat ip to GW4   # hairpin
//	    meta nfproto ipv4 ip saddr SUBNET4 oifname != BR masquerade    # only with --nat
//	  }
//	  chain fwd-C {                                                     # one per container
//	    meta nfproto ipv4 fib daddr type local meta l4proto tcp th dport 8080 dnat ip to 10.x.y.5:80
//	    meta nfproto ipv4 ip daddr 127.0.0.1 meta l4proto udp th dport 5353 dnat ip to 10.x.y.5:53
//	  }
//	}
//
// Forwards from the host's own loopback need two more things, both on
// lodge's own interface and table (docs/networking.md, TestForwards):
// route_localnet=1 on the bridge, so the kernel routes a 127.0.0.1 source
// out of it, and the SNAT of loopback sources leaving by the bridge to the
// bridge's address, so the container's reply comes back at all.
// "Any local address" is `fib daddr type local`, so that traffic routed
// through the host to some other machine's port is never taken.

// NATTable is the name of network's inet table (forwards, masquerade).
func NATTable(network string) string { return "lodge-nat-" + network }

// Forward is one port forward: connections to Listen:HostPort go to
// Target:TargetPort. Listen and Target are of one family; an unspecified
// Listen (0.0.0.0, ::) means any local address of that family.
type Forward struct {
	Proto      string // "tcp" or "udp"
	Listen     netip.Addr
	HostPort   uint16
	Target     netip.Addr
	TargetPort uint16
}

func (f Forward) String() string {
	return fmt.Sprintf("%s %s -> %s", f.Proto, netip.AddrPortFrom(f.Listen, f.HostPort), netip.AddrPortFrom(f.Target, f.TargetPort))
}

// NAT edits the inet table of one network in the namespace of its conn.
type NAT struct {
	conn  *nftables.Conn
	table *nftables.Table
}

// NewNAT returns the NAT table of network (its kernel identity) in the
// namespace of conn.
func NewNAT(conn *nftables.Conn, network string) *NAT {
	return &NAT{conn: conn, table: &nftables.Table{Name: NATTable(network), Family: nftables.TableFamilyINet}}
}

func (n *NAT) chain(name string, hook *nftables.ChainHook, prio *nftables.ChainPriority) *nftables.Chain {
	return &nftables.Chain{Name: name, Table: n.table, Type: nftables.ChainTypeNAT, Hooknum: hook, Priority: prio}
}

func (n *NAT) prerouting() *nftables.Chain {
	return n.chain("prerouting", nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest)
}
func (n *NAT) output() *nftables.Chain {
	return n.chain("output", nftables.ChainHookOutput, nftables.ChainPriorityNATDest)
}
func (n *NAT) postrouting() *nftables.Chain {
	return n.chain("postrouting", nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource)
}

// Ensure creates the table and its base chains and (re)writes the
// postrouting rules, in one transaction; it is idempotent. It sets
// route_localnet=1 on bridge through /proc/sys, so the caller's thread must
// be in the namespace of conn (lodge: the host's). The loopback SNAT needs
// subnet4 (its gateway is the bridge's address); masquerade of subnet4 to
// everything but the bridge is added only when masquerade is true.
// subnet6 is not NATed (a ULA reaches the outside only if the user routes
// it); it is taken so that the signature does not change when it is.
func (n *NAT) Ensure(bridge string, subnet4, subnet6 netip.Prefix, masquerade bool) error {
	_ = subnet6
	if subnet4.IsValid() {
		// Our own interface's sysctl (like accept_ra in EnsureBridge).
		p := "/proc/sys/net/ipv4/conf/" + bridge + "/route_localnet"
		if err := os.WriteFile(p, []byte("1"), 0o644); err != nil {
			return fmt.Errorf("route_localnet on %s (forwards from the host's loopback need it): %w", bridge, err)
		}
	}
	n.conn.AddTable(n.table)
	n.conn.AddChain(n.prerouting())
	n.conn.AddChain(n.output())
	post := n.conn.AddChain(n.postrouting())
	n.conn.FlushChain(post)
	for _, r := range postroutingRules(bridge, subnet4, masquerade) {
		n.conn.AddRule(&nftables.Rule{Table: n.table, Chain: post, Exprs: r})
	}
	if err := n.conn.Flush(); err != nil {
		return fmt.Errorf("nftables table inet %s: %w", n.table.Name, err)
	}
	return nil
}

// ipsDstNAT is IPS_DST_NAT of ct status (linux/netfilter/nf_conntrack_common.h).
const ipsDstNAT = 1 << 5

// postroutingRules: the loopback SNAT, the hairpin SNAT and, if asked, the
// masquerade.
func postroutingRules(bridge string, subnet4 netip.Prefix, masquerade bool) [][]expr.Any {
	if !subnet4.IsValid() {
		return nil
	}
	nh := expr.PayloadBaseNetworkHeader
	gw := Gateway(subnet4).Addr()
	loop := netip.MustParsePrefix("127.0.0.0/8")
	rules := [][]expr.Any{cat(nfproto(unix.NFPROTO_IPV4), oifname(bridge, true),
		prefixMatch(nh, 12, loop),
		[]expr.Any{&expr.Immediate{Register: 1, Data: gw.AsSlice()},
			&expr.NAT{Type: expr.NATTypeSourceNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1}})}
	// Hairpin: a container reaching a forward (to itself or a neighbour)
	// through a host address; without the SNAT the answer would come
	// straight from the neighbour's address and be dropped.
	dnat := binary.NativeEndian.AppendUint32(nil, ipsDstNAT)
	rules = append(rules, cat(nfproto(unix.NFPROTO_IPV4), oifname(bridge, true), prefixMatch(nh, 12, subnet4.Masked()),
		[]expr.Any{&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: dnat, Xor: make([]byte, 4)},
			neq(make([]byte, 4)),
			&expr.Immediate{Register: 1, Data: gw.AsSlice()},
			&expr.NAT{Type: expr.NATTypeSourceNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1}}))
	if masquerade {
		rules = append(rules, cat(nfproto(unix.NFPROTO_IPV4), prefixMatch(nh, 12, subnet4.Masked()),
			oifname(bridge, false), []expr.Any{&expr.Masq{}}))
	}
	return rules
}

// Delete removes the table with every forward; a missing one is no error.
func (n *NAT) Delete() error {
	n.conn.DelTable(n.table)
	if err := n.conn.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("delete nftables table inet %s: %w", n.table.Name, err)
	}
	return nil
}

// Masquerades reports whether the table has a masquerade rule (for tests
// and `network show`).
func (n *NAT) Masquerades() (bool, error) {
	rules, err := n.conn.GetRules(n.table, n.postrouting())
	if err != nil {
		return false, err
	}
	for _, r := range rules {
		for _, e := range r.Exprs {
			if _, ok := e.(*expr.Masq); ok {
				return true, nil
			}
		}
	}
	return false, nil
}

func forwardChain(container string) string { return "fwd-" + container }

// SetForwards replaces container's forwards with fw, in one transaction
// (an empty fw removes them). The table must exist (Ensure).
func (n *NAT) SetForwards(container string, fw []Forward) error {
	if len(fw) == 0 {
		return n.RemoveForwards(container)
	}
	var rules [][]expr.Any
	for _, f := range fw {
		r, err := forwardRule(f)
		if err != nil {
			return fmt.Errorf("forward of %s: %w", container, err)
		}
		rules = append(rules, r)
	}
	name := forwardChain(container)
	ch, err := n.conn.ListChain(n.table, name)
	if err != nil || ch == nil {
		ch = n.conn.AddChain(&nftables.Chain{Name: name, Table: n.table})
	} else {
		n.conn.FlushChain(ch)
	}
	for _, base := range []*nftables.Chain{n.prerouting(), n.output()} {
		jumps, err := n.jumps(base, container)
		if err != nil {
			return err
		}
		if len(jumps) == 0 {
			n.conn.AddRule(&nftables.Rule{Table: n.table, Chain: base, UserData: []byte(container),
				Exprs: []expr.Any{jump(name)}})
		}
	}
	for _, r := range rules {
		n.conn.AddRule(&nftables.Rule{Table: n.table, Chain: ch, Exprs: r})
	}
	if err := n.conn.Flush(); err != nil {
		return fmt.Errorf("nftables forwards of %s in table inet %s: %w", container, n.table.Name, err)
	}
	return nil
}

// jumps are base's rules that jump to container's chain (tagged with its name).
func (n *NAT) jumps(base *nftables.Chain, container string) ([]*nftables.Rule, error) {
	rules, err := n.conn.GetRules(n.table, base)
	if err != nil {
		return nil, fmt.Errorf("list rules of table inet %s: %w", n.table.Name, err)
	}
	var out []*nftables.Rule
	for _, r := range rules {
		if string(r.UserData) == container {
			out = append(out, r)
		}
	}
	return out, nil
}

// RemoveForwards removes container's forwards; a missing table, chain or
// forward is no error.
func (n *NAT) RemoveForwards(container string) error {
	if t, err := n.conn.ListTableOfFamily(n.table.Name, n.table.Family); err != nil || t == nil {
		return nil // no table: nothing forwarded
	}
	found := false
	for _, base := range []*nftables.Chain{n.prerouting(), n.output()} {
		jumps, err := n.jumps(base, container)
		if err != nil {
			return err
		}
		for _, r := range jumps {
			found = true
			if err := n.conn.DelRule(r); err != nil {
				return err
			}
		}
	}
	if ch, err := n.conn.ListChain(n.table, forwardChain(container)); err == nil && ch != nil {
		found = true
		n.conn.FlushChain(ch)
		n.conn.DelChain(ch)
	}
	if !found {
		return nil
	}
	if err := n.conn.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove nftables forwards of %s from table inet %s: %w", container, n.table.Name, err)
	}
	return nil
}

// Forwards lists the containers with forwards in the table (their chains).
func (n *NAT) Forwards() ([]string, error) {
	chains, err := n.conn.ListChainsOfTableFamily(n.table.Family)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, c := range chains {
		if c.Table.Name == n.table.Name && len(c.Name) > 4 && c.Name[:4] == "fwd-" {
			out = append(out, c.Name[4:])
		}
	}
	return out, nil
}

// forwardRule: "meta nfproto F (fib daddr type local | ip daddr L) meta
// l4proto P th dport H dnat ip to T:TP".
func forwardRule(f Forward) ([]expr.Any, error) {
	var proto byte
	switch f.Proto {
	case "tcp":
		proto = unix.IPPROTO_TCP
	case "udp":
		proto = unix.IPPROTO_UDP
	default:
		return nil, fmt.Errorf("protocol %q is not tcp or udp", f.Proto)
	}
	if !f.Listen.IsValid() || !f.Target.IsValid() || f.Listen.Is4() != f.Target.Is4() {
		return nil, fmt.Errorf("%s: the listen and target addresses must be of one family", f)
	}
	if f.HostPort == 0 || f.TargetPort == 0 {
		return nil, fmt.Errorf("%s: port 0", f)
	}
	family, daddr := byte(unix.NFPROTO_IPV4), uint32(16)
	if !f.Listen.Is4() {
		family, daddr = unix.NFPROTO_IPV6, 24
	}
	r := nfproto(family)
	if f.Listen.IsUnspecified() {
		r = append(r, &expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
			eq(binary.NativeEndian.AppendUint32(nil, unix.RTN_LOCAL)))
	} else {
		r = append(r, load(expr.PayloadBaseNetworkHeader, daddr, uint32(f.Listen.BitLen()/8)), eq(f.Listen.AsSlice()))
	}
	r = append(r, l4(proto, 2, be16(f.HostPort))...)
	return append(r,
		&expr.Immediate{Register: 1, Data: f.Target.AsSlice()},
		&expr.Immediate{Register: 2, Data: be16(f.TargetPort)},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: uint32(family), RegAddrMin: 1, RegProtoMin: 2, Specified: true}), nil
}

// nfproto: "meta nfproto F" (an inet table sees both families).
func nfproto(family byte) []expr.Any {
	return []expr.Any{&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1}, eq([]byte{family})}
}

// oifname: "oifname NAME", or "oifname != NAME".
func oifname(name string, is bool) []expr.Any {
	v := append([]byte(name), 0)
	c := eq(v)
	if !is {
		c = neq(v)
	}
	return []expr.Any{&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1}, c}
}

// prefixMatch: the address at off of base is in p, e.g. "ip saddr 10.1.2.0/24".
func prefixMatch(base expr.PayloadBase, off uint32, p netip.Prefix) []expr.Any {
	n := uint32(p.Addr().BitLen() / 8)
	mask := prefixMask(p.Bits(), int(n))
	return []expr.Any{
		load(base, off, n),
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: n, Mask: mask, Xor: make([]byte, n)},
		eq(p.Masked().Addr().AsSlice()),
	}
}
