package tests

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"lodge/internal/testreq"
	"lodge/network"
)

// DHCP and DNS through the network's dnsmasq: containers get the address
// lodge chose for their MAC at boot, and find each other by name.

// hasAddress tells whether the container's interface has IPv4 address
// addr, asked from the host (Debian's minbase has no ip command).
func (e *env) hasAddress(container, dev, addr string) bool {
	pid := strconv.Itoa(e.info(container).PID)
	out, err := exec.Command("nsenter", "-n", "-t", pid, "ip", "-4", "addr", "show", dev).Output()
	return err == nil && strings.Contains(string(out), "inet "+addr+"/")
}

// needDnsmasq skips a test of DHCP where dnsmasq is not installed (.ci/run
// requires it).
func needDnsmasq(t *testing.T) {
	if _, err := os.Stat(network.DnsmasqPath); err != nil {
		testreq.Skip(t, "dnsmasq", "no "+network.DnsmasqPath+": apt-get install dnsmasq-base")
	}
}

func TestDHCPAndNamesOnDefaultNetwork(t *testing.T) {
	needDnsmasq(t)
	e := newEnv(t)
	e.createBusybox("b1", "network.0.network=default")
	e.createBusybox("b2", "network.0.network=default")
	e.must("start", "b1")
	e.must("start", "b2")
	for _, c := range []string{"b1", "b2"} {
		addr := e.info(c).NICs[0].Address4
		if addr == "" {
			t.Fatalf("info shows no address for %s's eth0 while it runs", c)
		}
		waitUntil(t, c+" to get "+addr+" by DHCP", func() bool { return e.hasAddress(c, "eth0", addr) })
	}
	for _, name := range []string{"b2", "b2.lodge"} {
		if r := e.pingFrom("b1", name); r.code != 0 {
			t.Errorf("b1 cannot ping %s by name: %s", name, r)
		}
	}
	if r := e.pingFrom("b2", "b1"); r.code != 0 {
		t.Errorf("b2 cannot ping b1 by name: %s", r)
	}
	// The same MAC gets the same address at the next start.
	before := e.info("b1").NICs[0].Address4
	e.must("stop", "b1")
	e.assertNoNICLeftovers("b1")
	e.must("start", "b1")
	if after := e.info("b1").NICs[0].Address4; after != before {
		t.Errorf("b1 got %s after a restart, %s before", after, before)
	}
	e.expectFail(4, "b1", "network", "delete", "default")
	e.must("delete", "--force", "b1")
	e.assertNoNICLeftovers("b1")
}

// A Debian container gets its address from networkd's DHCP during boot and
// reaches "running"; it boots to "running" just as well while its
// network's dnsmasq does not answer, and a killed dnsmasq is back within
// seconds.
func TestDebianDHCPAndDnsmasqRestart(t *testing.T) {
	needDnsmasq(t)
	e := newEnv(t)
	e.must("network", "create", "dn", "--subnet", "10.201.21.0/24")
	e.must("create", "d1", "--template", "debian", "-c", "network.0.network=dn")
	e.createBusybox("peer", "network.0.network=dn", "network.0.ipv4=10.201.21.50")
	e.must("start", "peer")
	e.must("start", "d1")
	waitRunning(t, e, "d1")
	addr := e.info("d1").NICs[0].Address4
	waitUntil(t, "d1 to get "+addr+" by DHCP", func() bool { return e.hasAddress("d1", "eth0", addr) })
	if state := strings.TrimSpace(e.run("exec", "d1", "--", "systemctl", "is-system-running").stdout); state != "running" {
		t.Errorf("d1 is %q with its network, want running", state)
	}
	if r := e.run("exec", "d1", "--", "getent", "hosts", "peer"); r.code != 0 || !strings.Contains(r.stdout, "10.201.21.50") {
		t.Errorf("d1 does not resolve peer: %s", r)
	}
	if r := e.pingFrom("peer", "d1"); r.code != 0 {
		t.Errorf("peer cannot ping d1 by name: %s", r)
	}

	// dnsmasq stopped (not answering): the boot does not wait for DHCP.
	first := e.dnsmasqOf("dn")
	if first == 0 {
		t.Fatal("no dnsmasq runs for network dn")
	}
	syscall.Kill(first, syscall.SIGSTOP)
	e.must("stop", "d1")
	began := time.Now()
	e.must("start", "d1")
	waitRunning(t, e, "d1")
	t.Logf("boot to running without DHCP answers: %v", time.Since(began))
	syscall.Kill(first, syscall.SIGCONT)

	// dnsmasq killed: its supervisor starts another, and DHCP works again.
	killAndReap(t, first)
	began = time.Now()
	waitUntil(t, "a new dnsmasq", func() bool { p := e.dnsmasqOf("dn"); return p != 0 && p != first })
	t.Logf("dnsmasq back after %v", time.Since(began))
	e.must("restart", "d1")
	waitRunning(t, e, "d1")
	waitUntil(t, "d1 to get "+addr+" by DHCP again", func() bool { return e.hasAddress("d1", "eth0", addr) })
	e.must("stop", "d1")
	e.assertNoNICLeftovers("d1")
}
