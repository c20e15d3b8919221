package network

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"lodge/internal/testreq"
)

// startNetNS starts a process in a network namespace of its own (owned by
// the host's user namespace, like the host's): a private "host" whose
// firewall the test may change.
func startNetNS(t *testing.T) *container {
	t.Helper()
	cmd := exec.Command("sleep", "infinity")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNET, Pdeathsig: unix.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		cmd.Process.Kill()
		t.Fatal(err)
	}
	c := &container{cmd: cmd, nsFD: fd}
	t.Cleanup(c.kill)
	return c
}

// run runs a command in c's network namespace through nsenter.
func (c *container) run(t *testing.T, args ...string) {
	t.Helper()
	full := append([]string{fmt.Sprintf("--net=/proc/%d/ns/net", c.cmd.Process.Pid), "--"}, args...)
	if out, err := exec.Command("nsenter", full...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func describe(ds []ForwardDrop) string {
	var s []string
	for _, d := range ds {
		s = append(s, fmt.Sprintf("%s %s/%s/%s %s", d.Source, d.Family, d.Table, d.Chain, d.What))
	}
	return strings.Join(s, "; ")
}

// TestForwardDrops sets FORWARD drops in a private namespace with nft (via
// google/nftables), iptables-nft and iptables-legacy, and expects each one
// reported; a clean namespace reports none, and is left as clean (the
// check loads no legacy table).
func TestForwardDrops(t *testing.T) {
	needRoot(t)
	for _, tool := range []string{"nsenter", "iptables-nft", "iptables-legacy", "ip6tables-legacy"} {
		if _, err := exec.LookPath(tool); err != nil {
			testreq.Skipf(t, "iptables", "%s is not installed (Debian packages iptables, util-linux)", tool)
		}
	}
	ns := startNetNS(t)
	got, err := ForwardDrops(ns.nsFD)
	if err != nil || len(got) != 0 {
		t.Fatalf("clean namespace: %v, %v", describe(got), err)
	}
	names, _ := os.ReadFile(fmt.Sprintf("/proc/%d/net/ip_tables_names", ns.cmd.Process.Pid))
	if len(names) != 0 {
		t.Errorf("the check loaded legacy tables: %q", names)
	}
	addNftForwardDrop(t, ns.nsFD)
	ns.run(t, "iptables-nft", "-P", "FORWARD", "DROP")
	ns.run(t, "iptables-legacy", "-A", "FORWARD", "-o", "eth9", "-j", "ACCEPT")
	ns.run(t, "iptables-legacy", "-A", "FORWARD", "-o", "eth8", "-j", "DROP")
	ns.run(t, "iptables-legacy", "-A", "FORWARD", "-j", "REJECT")
	ns.run(t, "iptables-legacy", "-P", "FORWARD", "DROP")
	ns.run(t, "ip6tables-legacy", "-P", "FORWARD", "DROP")
	got, err = ForwardDrops(ns.nsFD)
	if err != nil {
		t.Fatal(err)
	}
	want := "nftables inet/other-fw/fwd policy drop; nftables inet/other-fw/fwd rule drops; " +
		"nftables ip/filter/FORWARD policy drop; " +
		"iptables-legacy ip/filter/FORWARD rule drops; iptables-legacy ip/filter/FORWARD rule rejects; " +
		"iptables-legacy ip/filter/FORWARD policy drop; ip6tables-legacy ip6/filter/FORWARD policy drop"
	if describe(got) != want {
		t.Errorf("got  %s\nwant %s", describe(got), want)
	}
	for _, d := range got {
		t.Log(d)
	}
}

// addNftForwardDrop adds, in the namespace nsFD, what another firewall
// manager might: an inet table with a forward chain of policy drop and a
// drop rule.
func addNftForwardDrop(t *testing.T, nsFD int) {
	t.Helper()
	conn, err := nftables.New(nftables.WithNetNSFd(nsFD))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseLasting()
	drop := nftables.ChainPolicyDrop
	tb := conn.AddTable(&nftables.Table{Name: "other-fw", Family: nftables.TableFamilyINet})
	ch := conn.AddChain(&nftables.Chain{Name: "fwd", Table: tb, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &drop})
	conn.AddRule(&nftables.Rule{Table: tb, Chain: ch, Exprs: append(iifname("eth7"), verdict(expr.VerdictDrop))})
	if err := conn.Flush(); err != nil {
		t.Fatal(err)
	}
}

// TestForwardDropsOfHost only reads and logs this machine's drops.
func TestForwardDropsOfHost(t *testing.T) {
	needRoot(t)
	got, err := ForwardDrops(-1)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d forward drops on this host: %s", len(got), describe(got))
	for _, f := range []string{"iptables", "ip6tables"} {
		t.Logf("net.bridge.bridge-nf-call-%s: %v", f, brNFCall(f))
	}
}

// TestForwardDropEatsBridgedTraffic shows PITFALLS.md 27 on this kernel:
// with br_netfilter's bridge-nf-call-iptables on, an inet forward-hook drop
// also drops frames bridged between two containers of one bridge. The drop
// is in a table of the test's own (not named lodge-*, which the check skips) and matches only the test's container.
func TestForwardDropEatsBridgedTraffic(t *testing.T) {
	needRoot(t)
	if !brNFCall("iptables") {
		t.Skip("net.bridge.bridge-nf-call-iptables is 0 here: inet forward hooks do not see bridged frames")
	}
	h := hostHandle(t)
	bc := testNetwork(t, h)
	a, b := startContainer(t), startContainer(t)
	na, nb := addTestNIC(t, h, bc, a, "fa", 2), addTestNIC(t, h, bc, b, "fb", 3)
	listen(t, b, nb.IPv4.Addr())
	// The precondition may take a few tries: new ports on a new bridge, ARP,
	// and a loaded machine made a single 1 s dial time out in CI once.
	var err error
	for try := 0; try < 10; try++ {
		if err = dialFrom(t, a, na.IPv4.Addr(), nb.IPv4.Addr()); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("before the drop, 10 tries: %v", err)
	}
	conn := nftConn(t)
	tb := conn.AddTable(&nftables.Table{Name: "test-fwd-" + bc.Network, Family: nftables.TableFamilyINet})
	t.Cleanup(func() { conn.DelTable(tb); conn.Flush() })
	ch := conn.AddChain(&nftables.Chain{Name: "fwd", Table: tb, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter})
	conn.AddRule(&nftables.Rule{Table: tb, Chain: ch, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1}, eq([]byte{unix.NFPROTO_IPV4}),
		load(expr.PayloadBaseNetworkHeader, 12, 4), eq(na.IPv4.Addr().AsSlice()), verdict(expr.VerdictDrop)}})
	if err := conn.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := dialFrom(t, a, na.IPv4.Addr(), nb.IPv4.Addr()); err == nil {
		t.Error("a forward-hook drop did not stop bridged traffic, though bridge-nf-call-iptables is 1")
	}
	got, _ := ForwardDrops(-1)
	found := false
	for _, d := range got {
		found = found || d.Table == tb.Name && d.Bridged
	}
	if !found {
		t.Errorf("ForwardDrops did not report the drop as bridged: %s", describe(got))
	}
}
