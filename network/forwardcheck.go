package network

import (
	"fmt"
	"os"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// ForwardDrop is a firewall rule or chain policy, not lodge's, that drops
// forwarded traffic and so may eat a network's traffic (PITFALLS.md 27:
// another firewall manager's FORWARD DROP policy).
type ForwardDrop struct {
	Source  string // "nftables" (nft, iptables-nft, firewalld) or "iptables-legacy"
	Family  string // ip, ip6, inet or bridge
	Table   string
	Chain   string
	Handle  uint64 // the nftables rule's handle; 0 for a chain's policy
	What    string // "policy drop", "rule drops", "rule rejects"
	Bridged bool   // it also sees traffic between ports of a bridge (see ForwardDrops)
	Inspect string // the command that shows it
}

func (d ForwardDrop) String() string {
	where := "nftables"
	if d.Handle != 0 {
		where += fmt.Sprintf(" rule handle %d", d.Handle)
	}
	scope := "routed traffic (NAT to the outside)"
	if d.Bridged {
		scope = "routed traffic and traffic between containers on a bridge"
	}
	if d.Source != "nftables" {
		where = d.Source
	}
	return fmt.Sprintf("%s in %s table %s chain %s (%s) drops %s; see: %s", d.What, d.Family, d.Table, d.Chain, where, scope, d.Inspect)
}

// ForwardDrops lists, read-only, the drops at the forward hook of the
// network namespace nsFD (-1: the caller's): nftables base chains at the
// forward hook of the ip, ip6, inet and bridge families whose policy is drop
// or that have a rule ending in drop or reject (iptables-nft and firewalld
// live there too), and the FORWARD chain of legacy iptables' filter tables.
// Chains such rules jump to are not followed.
//
// Bridged says whether the drop also hits frames bridged between two ports
// of one bridge: always for the bridge family; for ip/inet (ip6) only when
// br_netfilter's net.bridge.bridge-nf-call-iptables (-ip6tables) is 1 in the
// namespace, which Docker and many hosts set.
func ForwardDrops(nsFD int) ([]ForwardDrop, error) {
	var out []ForwardDrop
	err := inNetNS(nsFD, func() error {
		nft, err := nftForwardDrops()
		if err != nil {
			return err
		}
		legacy, err := legacyForwardDrops()
		if err != nil {
			return err
		}
		out = append(nft, legacy...)
		call4, call6 := brNFCall("iptables"), brNFCall("ip6tables")
		for i := range out {
			d := &out[i]
			d.Bridged = d.Family == "bridge" || call4 && (d.Family == "ip" || d.Family == "inet") || call6 && (d.Family == "ip6" || d.Family == "inet")
		}
		return nil
	})
	return out, err
}

func nftForwardDrops() ([]ForwardDrop, error) {
	conn, err := nftables.New() // in the thread's namespace
	if err != nil {
		return nil, err
	}
	defer conn.CloseLasting()
	chains, err := conn.ListChains()
	if err != nil {
		return nil, fmt.Errorf("list nftables chains: %w", err)
	}
	var out []ForwardDrop
	for _, c := range chains {
		fam := familyName(c.Table.Family)
		if c.Hooknum == nil || *c.Hooknum != *nftables.ChainHookForward || fam == "" || isLodgeTable(c.Table) {
			continue
		}
		base := ForwardDrop{Source: "nftables", Family: fam, Table: c.Table.Name, Chain: c.Name,
			Inspect: fmt.Sprintf("nft -a list chain %s %s %s", fam, c.Table.Name, c.Name)}
		if c.Policy != nil && *c.Policy == nftables.ChainPolicyDrop {
			d := base
			d.What = "policy drop"
			out = append(out, d)
		}
		rules, err := conn.GetRules(c.Table, c)
		if err != nil {
			return nil, fmt.Errorf("list rules of %s %s %s: %w", fam, c.Table.Name, c.Name, err)
		}
		for _, r := range rules {
			if what := dropKind(r.Exprs); what != "" {
				d := base
				d.Handle, d.What = r.Handle, what
				out = append(out, d)
			}
		}
	}
	return out, nil
}

// isLodgeTable: lodge's own tables (FirewallTable) are not another manager's.
func isLodgeTable(t *nftables.Table) bool { return strings.HasPrefix(t.Name, "lodge-") }

// dropKind says whether a rule's verdict drops or rejects.
func dropKind(exprs []expr.Any) string {
	for _, e := range exprs {
		switch v := e.(type) {
		case *expr.Verdict:
			if v.Kind == expr.VerdictDrop {
				return "rule drops"
			}
		case *expr.Reject:
			return "rule rejects"
		}
	}
	return ""
}

func familyName(f nftables.TableFamily) string {
	switch f {
	case nftables.TableFamilyIPv4:
		return "ip"
	case nftables.TableFamilyIPv6:
		return "ip6"
	case nftables.TableFamilyINet:
		return "inet"
	case nftables.TableFamilyBridge:
		return "bridge"
	}
	return ""
}

// brNFCall reads net.bridge.bridge-nf-call-<what> of the thread's namespace.
func brNFCall(what string) bool {
	b, err := os.ReadFile("/proc/sys/net/bridge/bridge-nf-call-" + what)
	return err == nil && strings.TrimSpace(string(b)) == "1"
}
