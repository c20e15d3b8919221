package tests

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"lodge/internal/testreq"
	"lodge/network"
)

// A network's dnsmasq: started with the network, restarted by its
// supervisor when killed, gone with the network.

// dnsmasqOf is the pid of the env's dnsmasq for network name (its pid file,
// checked by network.DnsmasqPID), 0 when none runs.
func (e *env) dnsmasqOf(name string) int {
	pid, _ := network.DnsmasqPID(filepath.Join(e.root, "networks", name))
	return pid
}

// listensOn53 reports whether pid listens on port 53 of gw.
func listensOn53(pid int, gw string) bool {
	users, _ := network.PortUsers(netip.MustParseAddr(gw), 53)
	return strings.Contains(strings.Join(users, "\n"), fmt.Sprintf("(pid %d) on %s:53", pid, gw))
}

func TestNetworkDnsmasqSupervised(t *testing.T) {
	if _, err := os.Stat(network.DnsmasqPath); err != nil {
		testreq.Skip(t, "dnsmasq", "no "+network.DnsmasqPath+": apt-get install dnsmasq-base")
	}
	e := newEnv(t)
	e.must("network", "create", "dns")
	n := e.network("dns")
	first := e.dnsmasqOf("dns")
	if first == 0 || !listensOn53(first, n.Gateway4) {
		t.Fatalf("no dnsmasq listening on %s:53 after network create (pid %d); network show: %+v", n.Gateway4, first, n)
	}
	if out := e.must("network", "show", "dns", "--format", "json"); !strings.Contains(out, fmt.Sprintf(`"dhcp": "running (pid %d)"`, first)) {
		t.Errorf("network show: %s", out)
	}
	// Killed, it is back within seconds (its supervisor), and listening.
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		pid := e.dnsmasqOf("dns")
		if pid != 0 && pid != first && listensOn53(pid, n.Gateway4) {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(e.root, "networks", "dns", network.DnsmasqLogName))
			t.Fatalf("no new dnsmasq within 10s of killing pid %d; log:\n%s", first, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	second := e.dnsmasqOf("dns")
	// EnsureNetwork's bringUp again: the running one is kept.
	e.must("network", "show", "dns")
	e.must("network", "delete", "dns")
	if left := processesWith(filepath.Join(e.root, "networks") + "/"); len(left) > 0 {
		t.Errorf("dnsmasq (pid %d, then %d) or its supervisor left after network delete: %v", first, second, left)
	}
}

// processesWith lists the processes with an argument containing s.
func processesWith(s string) []string {
	entries, _ := os.ReadDir("/proc")
	var found []string
	for _, d := range entries {
		if _, err := strconv.Atoi(d.Name()); err != nil {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if strings.Contains(string(cmdline), s) {
			found = append(found, d.Name()+": "+strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	}
	return found
}

// TestNetworkDnsmasqPortTaken: a dnsmasq whose supervisor was killed is
// reported and still ended by network delete; another process on the
// gateway's port 53 is named by network show.
func TestNetworkDnsmasqPortTaken(t *testing.T) {
	if _, err := os.Stat(network.DnsmasqPath); err != nil {
		testreq.Skip(t, "dnsmasq", "no "+network.DnsmasqPath+": apt-get install dnsmasq-base")
	}
	e := newEnv(t)
	e.must("network", "create", "busy")
	n := e.network("busy")
	var rec struct {
		Supervisor struct{ PID int } `json:"supervisor"`
	}
	data, err := os.ReadFile(filepath.Join(e.root, "run", "networks", "busy.json"))
	if err != nil || json.Unmarshal(data, &rec) != nil || rec.Supervisor.PID == 0 {
		t.Fatalf("supervisor record: %s, %v", data, err)
	}
	dnsmasq := e.dnsmasqOf("busy")
	if err := syscall.Kill(rec.Supervisor.PID, syscall.SIGKILL); err != nil { // lodge's, started by this test
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", rec.Supervisor.PID)); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the killed supervisor is still there")
		}
	}
	if got := e.network("busy"); !strings.Contains(fmt.Sprint(got.Warnings), fmt.Sprintf("running (pid %d) without its supervisor", dnsmasq)) {
		t.Errorf("network show after killing the supervisor: %+v", got)
	}
	if err := syscall.Kill(dnsmasq, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var conn *net.UDPConn
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if conn, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(n.Gateway4), 53))); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bind %s:53: %v", n.Gateway4, err)
		}
	}
	want := fmt.Sprintf("port 53 on the gateway %s is taken by %s (pid %d) on %s:53/udp", n.Gateway4, filepath.Base(os.Args[0])[:min(15, len(filepath.Base(os.Args[0])))], os.Getpid(), n.Gateway4)
	if got := e.network("busy"); !strings.Contains(strings.Join(got.Warnings, "\n"), want) {
		t.Errorf("network show with port 53 taken: want %q in %q", want, got.Warnings)
	}
	conn.Close()
	e.must("network", "delete", "busy")
	if left := processesWith(filepath.Join(e.root, "networks") + "/"); len(left) > 0 {
		t.Errorf("left after network delete: %v", left)
	}
}

// TestNetworkSubnetRoutedElsewhere: a route into the network's subnet
// through another interface (a veth of the test's, removed at its end) is named by the host checks.
func TestNetworkSubnetRoutedElsewhere(t *testing.T) {
	if _, err := os.Stat(network.DnsmasqPath); err != nil {
		testreq.Skip(t, "dnsmasq", "no "+network.DnsmasqPath+": apt-get install dnsmasq-base")
	}
	e := newEnv(t)
	e.must("network", "create", "routed")
	n := e.network("routed")
	if len(n.Warnings) > 0 {
		t.Errorf("warnings of a fresh network: %q", n.Warnings)
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name = "ld" + e.netTag + randomHex(2)
	veth := &netlink.Veth{LinkAttrs: attrs, PeerName: attrs.Name + "p"}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netlink.LinkDel(veth) })
	peer, err := netlink.LinkByName(attrs.Name + "p")
	if err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(netlink.LinkSetUp(veth), netlink.LinkSetUp(peer)); err != nil {
		t.Fatal(err)
	}
	subnet := netip.MustParsePrefix(n.IPv4)
	part := netip.PrefixFrom(subnet.Addr(), subnet.Bits()+1) // the lower half: no traffic of the host's goes there
	if err := netlink.RouteAdd(&netlink.Route{LinkIndex: veth.Attrs().Index, Dst: &net.IPNet{IP: part.Addr().AsSlice(), Mask: net.CIDRMask(part.Bits(), 32)}}); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("subnet %s is already routed elsewhere: route %s dev %s", subnet, part, attrs.Name)
	if got := e.network("routed"); !strings.Contains(strings.Join(got.Warnings, "\n"), want) {
		t.Errorf("want %q in the warnings %q", want, got.Warnings)
	}
}
