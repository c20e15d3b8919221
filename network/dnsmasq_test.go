package network

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"lodge/internal/testreq"
)

func TestRenderDnsmasqConf(t *testing.T) {
	c := DHCPConfig{
		Network: "t1-default", Bridge: "lodge-t1-defa", Dir: "/var/lib/lodge/networks/default", Domain: "lodge",
		IPv4: netip.MustParsePrefix("10.20.30.0/24"), IPv6: netip.MustParsePrefix("fd00:1:2:3::/64"),
	}
	conf := RenderDnsmasqConf(c)
	for _, want := range []string{
		"interface=lodge-t1-defa\n", "except-interface=lo\n", "bind-dynamic\n",
		"listen-address=10.20.30.1\n", "listen-address=fd00:1:2:3::1\n",
		"user=dnsmasq\n", "keep-in-foreground\n", "no-hosts\n", "no-resolv\n",
		"dhcp-range=10.20.30.0,static,255.255.255.0,1h\n",
		"dhcp-hostsdir=/var/lib/lodge/networks/default/dhcp-hosts\n",
		"hostsdir=/var/lib/lodge/networks/default/hosts\n",
		"dhcp-leasefile=/var/lib/lodge/networks/default/dnsmasq.leases\n",
		"log-facility=/var/lib/lodge/networks/default/dnsmasq.log\n",
		"dhcp-option=option:router,10.20.30.1\n", "dhcp-option=option:dns-server,10.20.30.1\n",
		"dhcp-option=option:domain-search,lodge\n", "local=/lodge/\n", "domain=lodge\n",
		"enable-ra\n", "dhcp-range=fd00:1:2:3::,ra-only,64,1h\n",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("missing %q in\n%s", want, conf)
		}
	}
	for _, bad := range []string{"0.0.0.0", "resolv-file", "dhcp-range=10.20.30.0,10."} {
		if strings.Contains(conf, bad) {
			t.Errorf("%q in\n%s", bad, conf)
		}
	}
	// Without IPv6: no RA; with Upstream: the host's resolvers.
	c.IPv6, c.Upstream, c.IPv4 = netip.Prefix{}, true, netip.MustParsePrefix("10.9.0.0/16")
	conf = RenderDnsmasqConf(c)
	for _, bad := range []string{"enable-ra", "ra-only", "no-resolv", "::"} {
		if strings.Contains(conf, bad) {
			t.Errorf("%q in\n%s", bad, conf)
		}
	}
	for _, want := range []string{"resolv-file=/etc/resolv.conf\n", "dhcp-range=10.9.0.0,static,255.255.0.0,1h\n"} {
		if !strings.Contains(conf, want) {
			t.Errorf("missing %q in\n%s", want, conf)
		}
	}
}

func TestParseProcAddr(t *testing.T) {
	for in, want := range map[string]string{
		"0100007F:0035":                         "127.0.0.1:53",
		"00000000:0043":                         "0.0.0.0:67",
		"00000000000000000000000000000000:0035": "[::]:53",
		"000080FE00000000FF00D1021CE5FFFE:0223": "[fe80::2d1:ff:feff:e51c]:547",
	} {
		a, p, ok := parseProcAddr(in)
		if got := netip.AddrPortFrom(a, uint16(p)).String(); !ok || got != want {
			t.Errorf("parseProcAddr(%s) = %s, %v; want %s", in, got, ok, want)
		}
	}
}

func TestDHCPHostFiles(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"dhcp-hosts", "hosts"} {
		os.Mkdir(filepath.Join(dir, d), 0o755)
	}
	h := DHCPHost{Key: "c1.eth0", MAC: MAC("c1/eth0"), IPv4: netip.MustParseAddr("10.1.2.3"), IPv6: netip.MustParseAddr("fd00::1"), Name: "c1"}
	if err := WriteDHCPHost(dir, h); err != nil {
		t.Fatal(err)
	}
	if err := WriteDHCPHost(dir, DHCPHost{Key: "../x", MAC: h.MAC, IPv4: h.IPv4, Name: "x"}); err == nil {
		t.Error("a key with / was taken")
	}
	got, err := DHCPHosts(dir)
	if err != nil || len(got) != 1 || got[0].Key != h.Key || got[0].MAC.String() != h.MAC.String() || got[0].IPv4 != h.IPv4 || got[0].IPv6 != h.IPv6 || got[0].Name != "c1" {
		t.Fatalf("DHCPHosts = %+v, %v; want [%+v]", got, err, h)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "hosts", "c1.eth0")); string(b) != "10.1.2.3 c1\nfd00::1 c1\n" {
		t.Errorf("hosts file: %q", b)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".tmp-*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
	if err := RemoveDHCPHost(dir, "c1.eth0"); err != nil {
		t.Fatal(err)
	}
	if err := RemoveDHCPHost(dir, "c1.eth0"); err != nil {
		t.Errorf("removing a missing host: %v", err)
	}
	if got, err := DHCPHosts(dir); err != nil || len(got) != 0 {
		t.Errorf("after remove: %+v, %v", got, err)
	}
}

// TestDnsmasqServes runs a dnsmasq from RenderDnsmasqConf on a test bridge
// of this host, and a DHCP client (busybox udhcpc) in a network namespace
// of its own with a veth on the bridge.
func TestDnsmasqServes(t *testing.T) {
	needRoot(t)
	if _, err := os.Stat(DnsmasqPath); err != nil {
		testreq.Skip(t, "dnsmasq", "no "+DnsmasqPath+": apt-get install dnsmasq-base")
	}
	h := hostHandle(t)
	bc := testNetwork(t, h)
	gw := Gateway(bc.IPv4).Addr()
	dir, err := os.MkdirTemp("", "lodge-dhcp-") // below /tmp: traversable for dnsmasq's user
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	c := DHCPConfig{Network: bc.Network, Bridge: BridgeName(bc.Network), IPv4: bc.IPv4, IPv6: bc.IPv6, Dir: dir, Domain: "lodge"}
	known := DHCPHost{Key: "c1.eth0", MAC: MAC(bc.Network + "/c1"), IPv4: hostAddr(bc.IPv4, 10).Addr(), Name: "c1"}
	if err := PrepareDHCPDir(c); err != nil {
		t.Fatal(err)
	}
	if err := WriteDHCPHost(dir, known); err != nil { // before dnsmasq: read at its start
		t.Fatal(err)
	}
	dnsmasq := startDnsmasq(t, c)

	client := netnsProcess(t)
	peer := clientVeth(t, h, c.Bridge, client, known.MAC)
	lease := udhcpc(t, client, peer)
	want := fmt.Sprintf("ip=%s router=%s dns=%s domain=lodge", known.IPv4, gw, gw)
	if !strings.Contains(lease, want) {
		t.Fatalf("udhcpc: %q, want %q; log:\n%s", lease, want, readLog(dir))
	}
	if leases, _ := os.ReadFile(filepath.Join(dir, DnsmasqLeaseName)); !bytes.Contains(leases, []byte(known.MAC.String())) {
		t.Errorf("no lease for %s in %q", known.MAC, leases)
	}

	// dnsmasq dropped to its user.
	if status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", dnsmasq.Process.Pid)); !regexp.MustCompile(`(?m)^Uid:\s+` + dnsmasqUID(t) + `\s`).Match(status) {
		t.Errorf("dnsmasq does not run as %s:\n%s", DnsmasqUser, status)
	}
	// Router advertisements: the client's SLAAC address from its MAC.
	eui := eui64(bc.IPv6, known.MAC)
	eventually(t, "the client has "+eui.String()+" by SLAAC", func() (bool, string) {
		out, _ := inClient(client, "/bin/busybox", "ip", "-6", "addr", "show", "dev", peer).CombinedOutput()
		return strings.Contains(string(out), eui.String()+"/64"), string(out)
	})

	// The script configures nothing: give the client its address.
	if out, err := inClient(client, "/bin/busybox", "ip", "addr", "add", netip.PrefixFrom(known.IPv4, bc.IPv4.Bits()).String(), "dev", peer).CombinedOutput(); err != nil {
		t.Fatalf("ip addr add: %v: %s", err, out)
	}

	// A host entry written now resolves at once (no restart), as NAME and
	// NAME.lodge, from the client, which never did DHCP for it.
	static := DHCPHost{Key: "c2.eth0", MAC: MAC(bc.Network + "/c2"), IPv4: hostAddr(bc.IPv4, 20).Addr(), Name: "c2"}
	if err := WriteDHCPHost(dir, static); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"c2", "c2.lodge", "c1.lodge"} {
		addr := map[string]netip.Addr{"c2": static.IPv4, "c2.lodge": static.IPv4, "c1.lodge": known.IPv4}[name]
		eventually(t, fmt.Sprintf("%s resolves to %s", name, addr), func() (bool, string) {
			out, _ := inClient(client, "/bin/busybox", "nslookup", name, gw.String()).CombinedOutput()
			return regexp.MustCompile(`Address:\s+` + regexp.QuoteMeta(addr.String()) + `\b`).Match(out), string(out)
		})
	}
	if !ListensOn(dnsmasq.Process.Pid, gw, 53) || ListensOn(client.Process.Pid, gw, 53) {
		t.Errorf("ListensOn(dnsmasq) = %v, ListensOn(another process) = %v", ListensOn(dnsmasq.Process.Pid, gw, 53), ListensOn(client.Process.Pid, gw, 53))
	}
	if pid, ok := DnsmasqPID(dir); !ok || pid != dnsmasq.Process.Pid {
		t.Errorf("DnsmasqPID = %d, %v; want %d", pid, ok, dnsmasq.Process.Pid)
	}
	if users, err := PortUsers(gw, 53); err != nil || !strings.Contains(strings.Join(users, "\n"), fmt.Sprintf("dnsmasq (pid %d) on %s:53/udp", dnsmasq.Process.Pid, gw)) {
		t.Errorf("PortUsers(%s, 53) = %q, %v", gw, users, err)
	}

	// Remove and release: no lease is left; a second release is no error.
	if err := RemoveDHCPHost(dir, known.Key); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := ReleaseLease(c.Bridge, known.IPv4, known.MAC); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the lease is gone from the lease file", func() (bool, string) {
		leases, _ := os.ReadFile(filepath.Join(dir, DnsmasqLeaseName))
		return !bytes.Contains(leases, []byte(known.MAC.String())), string(leases) + readLog(dir)
	})

	// An unknown MAC (the removed host's, after SIGHUP) gets nothing.
	eventually(t, "dnsmasq reloaded", func() (bool, string) {
		return strings.Count(readLog(dir), "cleared cache") >= 2, readLog(dir) // at its start, and at SIGHUP
	})
	if out := udhcpcFails(t, client, peer); strings.Contains(out, "ip=") {
		t.Errorf("an unknown MAC got a lease: %q; log:\n%s", out, readLog(dir))
	}
}

func dnsmasqUID(t *testing.T) string {
	u, err := user.Lookup(DnsmasqUser)
	if err != nil {
		t.Fatal(err)
	}
	return u.Uid
}

// eui64 is the SLAAC address of mac in the /64 prefix.
func eui64(prefix netip.Prefix, mac net.HardwareAddr) netip.Addr {
	a := prefix.Masked().Addr().As16()
	copy(a[8:], []byte{mac[0] ^ 0x02, mac[1], mac[2], 0xff, 0xfe, mac[3], mac[4], mac[5]})
	return netip.AddrFrom16(a)
}

func readLog(dir string) string {
	b, _ := os.ReadFile(filepath.Join(dir, DnsmasqLogName))
	return string(b)
}

// startDnsmasq runs c's dnsmasq and waits until it answers on the gateway.
func startDnsmasq(t *testing.T, c DHCPConfig) *exec.Cmd {
	t.Helper()
	args := DnsmasqArgs(c)
	cmd := exec.Command(args[0], args[1:]...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: unix.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM) // ours, by pid
		<-exited
	})
	gw := Gateway(c.IPv4).Addr()
	eventually(t, "dnsmasq listens on "+gw.String(), func() (bool, string) {
		select {
		case <-exited:
			t.Fatalf("dnsmasq exited: %v: %s%s", cmd.ProcessState, stderr.String(), readLog(c.Dir))
		default:
		}
		users, _ := PortUsers(gw, 53)
		return strings.Contains(strings.Join(users, " "), fmt.Sprintf("(pid %d)", cmd.Process.Pid)), stderr.String()
	})
	return cmd
}

// netnsProcess is a sleeping process in a new network namespace (as root,
// no user namespace: udhcpc needs raw sockets there).
func netnsProcess(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "infinity")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNET, Pdeathsig: unix.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

func inClient(client *exec.Cmd, args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{fmt.Sprintf("--net=/proc/%d/ns/net", client.Process.Pid), "--"}, args...)...)
}

// clientVeth makes a veth pair, the host end on bridge, the other end (with
// mac, up) in client's namespace; it returns that end's name.
func clientVeth(t *testing.T, h *netlink.Handle, bridge string, client *exec.Cmd, mac net.HardwareAddr) string {
	t.Helper()
	if _, err := exec.LookPath("nsenter"); err != nil {
		testreq.Skip(t, "nsenter", "no nsenter (util-linux)")
	}
	name := unique("vd")
	attrs := netlink.NewLinkAttrs()
	attrs.Name = name
	veth := &netlink.Veth{LinkAttrs: attrs, PeerName: name + "p", PeerHardwareAddr: mac}
	if err := h.LinkAdd(veth); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.LinkDel(veth) })
	br, err := h.LinkByName(bridge)
	if err != nil {
		t.Fatal(err)
	}
	peer, err := h.LinkByName(name + "p")
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{h.LinkSetMaster(veth, br), h.LinkSetUp(veth), h.LinkSetNsPid(peer, client.Process.Pid)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if out, err := inClient(client, "/bin/busybox", "ip", "link", "set", name+"p", "up").CombinedOutput(); err != nil {
		t.Fatalf("set %sp up: %v: %s", name, err, out)
	}
	return name + "p"
}

// udhcpc asks for a lease on ifname in client's namespace and returns what
// its script printed: "ip=... router=... dns=... domain=...".
func udhcpc(t *testing.T, client *exec.Cmd, ifname string) string {
	t.Helper()
	out, err := udhcpcCmd(t, client, ifname).CombinedOutput()
	if err != nil {
		t.Fatalf("udhcpc: %v: %s", err, out)
	}
	return string(out)
}

func udhcpcFails(t *testing.T, client *exec.Cmd, ifname string) string {
	t.Helper()
	out, err := udhcpcCmd(t, client, ifname).CombinedOutput()
	if err == nil {
		t.Errorf("udhcpc succeeded: %s", out)
	}
	return string(out)
}

func udhcpcCmd(t *testing.T, client *exec.Cmd, ifname string) *exec.Cmd {
	script := filepath.Join(t.TempDir(), "script")
	os.WriteFile(script, []byte("#!/bin/busybox sh\n[ \"$1\" = bound ] && echo \"ip=$ip router=$router dns=$dns domain=$domain\"\nexit 0\n"), 0o755)
	// -q: exit once bound; -n: exit if no lease; 3 tries, 1 s apart.
	return inClient(client, "/bin/busybox", "udhcpc", "-i", ifname, "-q", "-n", "-f", "-t", "3", "-T", "1", "-s", script)
}

// eventually polls cond until it holds, failing the test after 10 s with
// what cond last said.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s; last: %s", what, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
