package tests

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"lodge/network"
)

// The management plane of networks: records, bridges and anti-spoofing
// tables on this machine's kernel, each env's own through its network.tag.
// No NIC is attached to a container yet (the data plane is next), and no
// test asks for NAT.

type netInfo struct {
	Name     string   `json:"name"`
	Bridge   string   `json:"bridge"`
	Table    string   `json:"nftables_table"`
	IPv4     string   `json:"ipv4"`
	IPv6     string   `json:"ipv6"`
	Gateway4 string   `json:"gateway4"`
	State    string   `json:"state"`
	UsedBy   []string `json:"used_by"`
	Warnings []string `json:"warnings"`
}

func (e *env) networks() []netInfo {
	e.t.Helper()
	var nets []netInfo
	if err := json.Unmarshal([]byte(e.must("network", "list", "--format", "json")), &nets); err != nil {
		e.t.Fatal(err)
	}
	return nets
}

func (e *env) network(name string) netInfo {
	e.t.Helper()
	var n netInfo
	if err := json.Unmarshal([]byte(e.must("network", "show", name, "--format", "json")), &n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// deleteNetworks (cleanup) deletes the env's networks and checks that no
// bridge or nftables table of theirs is left.
func (e *env) deleteNetworks() {
	var nets []netInfo
	if r := e.run("network", "list", "--format", "json"); r.code == 0 {
		json.Unmarshal([]byte(r.stdout), &nets)
	}
	for _, n := range nets {
		if r := e.run("network", "delete", n.Name); r.code != 0 {
			e.t.Errorf("lodge network delete %s: %s", n.Name, r)
		}
	}
	if left := e.networkLeftovers(); len(left) > 0 {
		e.t.Errorf("network objects left behind: %v", left)
	}
}

// networkLeftovers lists the env's bridges (by alias) and nftables tables.
func (e *env) networkLeftovers() []string {
	var left []string
	h, err := netlink.NewHandle()
	if err != nil {
		return []string{err.Error()}
	}
	defer h.Close()
	links, _ := network.OwnedLinks(h)
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Alias, network.AliasPrefix+"network "+e.netTag+"-") {
			left = append(left, "link "+l.Attrs().Name)
		}
	}
	out, _ := exec.Command("nft", "list", "tables").Output()
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "lodge-"+e.netTag+"-") || strings.Contains(line, "lodge-nat-"+e.netTag+"-") {
			left = append(left, line)
		}
	}
	return left
}

// hostPrefixes are the host's routes and addresses but the env's bridges'.
func (e *env) hostPrefixes() []netip.Prefix {
	e.t.Helper()
	h, err := netlink.NewHandle()
	if err != nil {
		e.t.Fatal(err)
	}
	defer h.Close()
	used, err := network.UsedPrefixes(h)
	if err != nil {
		e.t.Fatal(err)
	}
	return used
}

func TestNetworkCreateListShowDelete(t *testing.T) {
	e := newEnv(t)
	out := e.must("network", "create", "web", "--ipv6", "auto")
	if !strings.Contains(out, "Created network web") {
		t.Errorf("create said %q", out)
	}
	nets := e.networks()
	if len(nets) != 1 || nets[0].Name != "web" || nets[0].State != "up" || nets[0].IPv6 == "" {
		t.Fatalf("network list: %+v", nets)
	}
	n := e.network("web")
	link, err := netlink.LinkByName(n.Bridge)
	if err != nil {
		t.Fatalf("bridge %s of network web: %v", n.Bridge, err)
	}
	if link.Type() != "bridge" || link.Attrs().Alias != network.BridgeAlias(e.netTag+"-web") {
		t.Errorf("bridge %s: type %s alias %q", n.Bridge, link.Type(), link.Attrs().Alias)
	}
	addrs, _ := netlink.AddrList(link, netlink.FAMILY_V4)
	if len(addrs) != 1 || addrs[0].IP.String() != n.Gateway4 {
		t.Errorf("bridge addresses %v, want gateway %s", addrs, n.Gateway4)
	}
	if out, err := exec.Command("nft", "list", "table", "bridge", n.Table).CombinedOutput(); err != nil {
		t.Errorf("nft list table bridge %s: %v\n%s", n.Table, err, out)
	}
	// The NAT table: the loopback SNAT for forwards, no masquerade without --nat.
	natTable := network.NATTable(e.netTag + "-web")
	if out, err := exec.Command("nft", "list", "table", "inet", natTable).CombinedOutput(); err != nil {
		t.Errorf("nft list table inet %s: %v\n%s", natTable, err, out)
	} else if strings.Contains(string(out), "masquerade") || !strings.Contains(string(out), "snat ip to "+n.Gateway4) {
		t.Errorf("table inet %s of a network without --nat:\n%s", natTable, out)
	}
	table := e.must("network", "show", "web")
	for _, want := range []string{"Bridge:", n.Bridge, n.IPv4, "gateway " + n.Gateway4} {
		if !strings.Contains(table, want) {
			t.Errorf("network show lacks %q:\n%s", want, table)
		}
	}
	e.expectFail(4, `network "web" already exists`, "network", "create", "web")
	e.expectFail(2, "invalid network name", "network", "create", "Bad_Name")
	e.createBusybox("keep")
	for _, verb := range []string{"delete", "show"} {
		e.expectFail(2, "invalid network name", "network", verb, "../containers/keep")
	}
	if _, err := os.Stat(filepath.Join(e.root, "containers", "keep", "config.toml")); err != nil {
		t.Errorf("a network command with a path for a name touched a container: %v", err)
	}
	e.must("network", "delete", "web")
	if left := e.networkLeftovers(); len(left) > 0 {
		t.Errorf("after delete: %v", left)
	}
	if nets := e.networks(); len(nets) != 0 {
		t.Errorf("network list after delete: %+v", nets)
	}
	e.expectFail(3, `network "web" does not exist`, "network", "delete", "web")
	e.expectFail(3, `network "web" does not exist`, "network", "show", "web")
}

func TestNetworkSubnetOverlapRefused(t *testing.T) {
	e := newEnv(t)
	// The host's own subnets, from its routes: a /24 of one of them.
	var host netip.Prefix
	for _, p := range e.hostPrefixes() {
		if p.Addr().Is4() && p.Bits() <= 24 && !p.Addr().IsLoopback() {
			host = netip.PrefixFrom(p.Addr(), 24).Masked()
			break
		}
	}
	if !host.IsValid() {
		t.Skip("the host has no IPv4 route of /24 or larger to overlap")
	}
	r := e.expectFail(2, "overlaps what this host already uses: route", "network", "create", "clash", "--subnet", host.String())
	t.Logf("refusal: %s", strings.TrimSpace(r.stderr))
	e.must("network", "create", "one")
	one := e.network("one")
	e.expectFail(2, `overlaps lodge network "one" (`+one.IPv4+")", "network", "create", "two", "--subnet", one.IPv4)
	e.expectFail(2, "has host bits set; did you mean", "network", "create", "two", "--subnet", strings.Replace(one.IPv4, ".0/", ".7/", 1))
	if nets := e.networks(); len(nets) != 1 {
		t.Errorf("refused creates left networks: %+v", nets)
	}
}

func TestDefaultNetworkAndNICs(t *testing.T) {
	e := newEnv(t)
	before := e.hostPrefixes()
	e.createBusybox("c1", "network.0.network=default")
	e.createBusybox("c2", "network.0.network=default")
	nets := e.networks()
	if len(nets) != 1 || nets[0].Name != "default" || nets[0].State != "up" {
		t.Fatalf("want one default network after two creates: %+v", nets)
	}
	def := nets[0]
	subnet := netip.MustParsePrefix(def.IPv4)
	for _, p := range before {
		if p.Bits() > 0 && p.Overlaps(subnet) {
			t.Errorf("default network %s overlaps the host's %s", subnet, p)
		}
	}
	if strings.Join(def.UsedBy, ",") != "c1,c2" {
		t.Errorf("default used by %v", def.UsedBy)
	}

	// hwaddr and name are saved at create, and stay.
	mac := func(name string) string {
		for _, line := range strings.Split(e.must("config", "show", name), "\n") {
			if strings.HasPrefix(line, "hwaddr = ") {
				return strings.Trim(strings.TrimPrefix(line, "hwaddr = "), `"`)
			}
		}
		return ""
	}
	mac1 := mac("c1")
	if mac1 == "" || mac1 == mac("c2") || !strings.Contains(e.must("config", "show", "c1"), `name = "eth0"`) {
		t.Fatalf("hwaddr or name not saved:\n%s", e.must("config", "show", "c1"))
	}
	e.must("config", "set", "c1", "limits.pids=100")
	if mac("c1") != mac1 {
		t.Errorf("hwaddr changed from %s to %s", mac1, mac("c1"))
	}
	if info := e.must("info", "c1"); !strings.Contains(info, "NIC eth0") || !strings.Contains(info, mac1) {
		t.Errorf("info lacks the NIC:\n%s", info)
	}

	// Static addresses: in the subnet, not special, not taken.
	gw := netip.MustParseAddr(def.Gateway4)
	good := gw.Next().Next().Next().Next() // .5
	e.must("config", "set", "c1", "network.0.ipv4="+good.String())
	if list := e.must("list"); !strings.Contains(list, good.String()) || !strings.Contains(list, "dhcp") {
		t.Errorf("list lacks c1's %s or c2's dhcp:\n%s", good, list)
	}
	e.expectFail(2, "is already the address of container c1 on network \"default\"", "config", "set", "c2", "network.0.ipv4="+good.String())
	e.expectFail(2, "is outside the subnet "+def.IPv4, "config", "set", "c2", "network.0.ipv4=192.0.2.77")
	e.expectFail(2, "is the gateway", "config", "set", "c2", "network.0.ipv4="+gw.String())
	e.expectFail(2, "is the broadcast address", "config", "set", "c2", "network.0.ipv4="+strings.Replace(def.IPv4, ".0/24", ".255", 1))
	e.expectFail(2, `network.0.ipv4: "10.1.2.3/24" is not an IPv4 address`, "config", "set", "c2", "network.0.ipv4=10.1.2.3/24")
	e.expectFail(2, `network "nosuch" does not exist`, "config", "set", "c2", "network.1.network=nosuch")
	e.expectFail(2, `network "nosuch" does not exist`, "create", "c3", "--template", "busybox", "-c", "network.0.network=nosuch")

	// A copy gets its own MAC and no static address (DHCP).
	e.must("copy", "c1", "c1copy")
	if m := mac("c1copy"); m == "" || m == mac1 {
		t.Errorf("the copy's hwaddr %q, the source's %s", m, mac1)
	}
	if text := e.must("config", "show", "c1copy"); strings.Contains(text, "ipv4") {
		t.Errorf("the copy kept the static address:\n%s", text)
	}
	e.must("delete", "c1copy")

	// A network that containers name cannot be deleted.
	e.expectFail(4, `network "default" is used by c1, c2`, "network", "delete", "default")
	e.must("config", "set", "c2", "network.0=")
	e.expectFail(4, `network "default" is used by c1:`, "network", "delete", "default")
	e.must("delete", "c1")
	e.must("network", "delete", "default")
	if left := e.networkLeftovers(); len(left) > 0 {
		t.Errorf("after deleting the default network: %v", left)
	}
}

// TestNetworkCreatesAtOnce: creates of several networks at the same moment
// are serialised by the networks' lock, so each gets a subnet of its own.
func TestNetworkCreatesAtOnce(t *testing.T) {
	e := newEnv(t)
	const n = 4
	results := make(chan result, n)
	for i := range n {
		go func() { results <- e.run("network", "create", fmt.Sprintf("n%d", i)) }()
	}
	for range n {
		if r := <-results; r.code != 0 {
			t.Errorf("network create: %s", r)
		}
	}
	seen := map[string]string{}
	for _, net := range e.networks() {
		if other, ok := seen[net.IPv4]; ok {
			t.Errorf("networks %s and %s share %s", other, net.Name, net.IPv4)
		}
		seen[net.IPv4] = net.Name
	}
	if len(seen) != n {
		t.Errorf("%d networks, want %d", len(seen), n)
	}
}
