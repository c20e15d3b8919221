package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"lodge/network"
)

// The data plane: NICs made at start in the container's network namespace,
// on the env's own bridges (its network.tag), and removed at stop, also
// when the container's monitor and init were killed.

// nicLeftovers lists what of container's NICs is left on the host: host
// ends and ifbs (by alias), anti-spoofing chains, DHCP host entries and
// leases of the env's networks, and the plan in the runtime directory.
func (e *env) nicLeftovers(container string) []string {
	e.t.Helper()
	var left []string
	id := e.netTag + "-" + container
	h, err := netlink.NewHandle()
	if err != nil {
		return []string{err.Error()}
	}
	defer h.Close()
	links, _ := network.OwnedLinks(h)
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Alias, network.NICAlias(id, "")[:len(network.NICAlias(id, ""))-len("nic=")]) {
			left = append(left, "link "+l.Attrs().Name+" ("+l.Attrs().Alias+")")
		}
	}
	hostIf := network.HostVethName(id, "eth0")
	out, _ := exec.Command("nft", "list", "ruleset").Output()
	if strings.Contains(string(out), hostIf) {
		left = append(left, "nftables rules of "+hostIf)
	}
	dirs, _ := filepath.Glob(filepath.Join(e.root, "networks", "*"))
	for _, dir := range dirs {
		for _, sub := range []string{"dhcp-hosts", "hosts"} {
			if files, _ := filepath.Glob(filepath.Join(dir, sub, container+".*")); len(files) > 0 {
				left = append(left, "host entries "+strings.Join(files, " "))
			}
		}
		if leases, err := os.ReadFile(filepath.Join(dir, "dnsmasq.leases")); err == nil && strings.Contains(string(leases), " "+container+" ") {
			left = append(left, "lease of "+container+" in "+dir)
		}
	}
	if _, err := os.Stat(filepath.Join(e.root, "run", container+".nics.json")); err == nil {
		left = append(left, "run/"+container+".nics.json")
	}
	return left
}

func (e *env) assertNoNICLeftovers(container string) {
	e.t.Helper()
	if left := waitEmpty(func() []string { return e.nicLeftovers(container) }); len(left) > 0 {
		e.t.Errorf("NIC of %s left behind: %v", container, left)
	}
}

// pingFrom pings addr from the container, once, with a short wait.
func (e *env) pingFrom(container, addr string) result {
	return e.run("exec", container, "--", "ping", "-c", "1", "-W", "2", addr)
}

func TestStaticNICsAndAntiSpoofing(t *testing.T) {
	e := newEnv(t)
	e.must("network", "create", "st", "--subnet", "10.201.17.0/24")
	e.createBusybox("s1", "network.0.network=st", "network.0.ipv4=10.201.17.10")
	e.createBusybox("s2", "network.0.network=st", "network.0.ipv4=10.201.17.11")
	e.must("start", "s1")
	e.must("start", "s2")

	addr := e.must("exec", "s1", "--", "ip", "-4", "addr", "show", "eth0")
	if !strings.Contains(addr, "inet 10.201.17.10/24") {
		t.Fatalf("s1's eth0 lacks its static address:\n%s", addr)
	}
	if r := e.pingFrom("s1", "10.201.17.11"); r.code != 0 {
		t.Fatalf("s1 cannot reach s2: %s", r)
	}
	if r := e.pingFrom("s1", "10.201.17.1"); r.code != 0 {
		t.Fatalf("s1 cannot reach the host (gateway): %s", r)
	}
	nic := e.info("s1").NICs[0]
	if nic.Address4 != "10.201.17.10" || nic.HostIf != network.HostVethName(e.netTag+"-s1", "eth0") {
		t.Fatalf("info shows NIC %+v", nic)
	}

	// Container root takes s2's address: the bridge drops what it sends.
	e.must("exec", "s1", "--", "ip", "addr", "flush", "dev", "eth0")
	e.must("exec", "s1", "--", "ip", "addr", "add", "10.201.17.12/24", "dev", "eth0")
	if r := e.pingFrom("s1", "10.201.17.11"); r.code == 0 {
		t.Fatalf("s1 reached s2 from an address not its own: %s", r)
	}
	// And another MAC.
	e.must("exec", "s1", "--", "ip", "addr", "flush", "dev", "eth0")
	e.must("exec", "s1", "--", "ip", "addr", "add", "10.201.17.10/24", "dev", "eth0")
	if r := e.pingFrom("s1", "10.201.17.11"); r.code != 0 {
		t.Fatalf("s1 cannot reach s2 with its own address again: %s", r)
	}
	e.must("exec", "s1", "--", "ip", "link", "set", "eth0", "address", "02:00:00:00:00:01")
	if r := e.pingFrom("s1", "10.201.17.11"); r.code == 0 {
		t.Fatalf("s1 reached s2 from a MAC not its own: %s", r)
	}

	e.must("stop", "s1")
	e.assertNoNICLeftovers("s1")
	e.expectFail(4, "s2", "network", "delete", "st")
}

// A container whose monitor is killed and whose init then dies leaves its
// NIC's rules and addresses; the next lodge command that sees it stopped
// removes them. The veth goes with the namespace.
func TestNICReleasedAfterMonitorAndInitKilled(t *testing.T) {
	e := newEnv(t)
	e.must("network", "create", "kk", "--subnet", "10.201.18.0/24")
	e.createBusybox("k1", "network.0.network=kk", "network.0.ipv4=10.201.18.10")
	e.must("start", "k1")
	k1 := e.info("k1")
	killAndReap(t, k1.MonitorPID)
	killAndReap(t, k1.PID)
	if got := e.list()[0].State; got != "STOPPED" {
		t.Fatalf("k1 is %s after its monitor and init were killed", got)
	}
	e.assertNoNICLeftovers("k1")
	e.must("start", "k1")
	if r := e.pingFrom("k1", "10.201.18.1"); r.code != 0 {
		t.Fatalf("k1 has no network after a start that followed the kill: %s", r)
	}
	e.must("delete", "--force", "k1")
	e.assertNoNICLeftovers("k1")
}

// killAndReap kills pid (a process of this test's lodge) and waits until it
// is gone.
func killAndReap(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill %d: %v", pid, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err != nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("pid %d still there 10 s after SIGKILL", pid)
}

// A guest reboot brings a new network namespace: the NIC is made again.
func TestNICSurvivesGuestReboot(t *testing.T) {
	e := newEnv(t)
	e.must("network", "create", "rb", "--subnet", "10.201.19.0/24")
	e.createBusybox("r1", "network.0.network=rb", "network.0.ipv4=10.201.19.10")
	e.must("start", "r1")
	before := e.info("r1").PID
	e.run("exec", "r1", "--", "reboot", "-f")
	waitFor(t, e, "r1", func(i info) bool { return i.State == "RUNNING" && i.PID != before && i.PID != 0 })
	waitUntil(t, "r1 to reach its gateway after the reboot", func() bool {
		return e.pingFrom("r1", "10.201.19.1").code == 0
	})
	e.must("stop", "r1")
	e.assertNoNICLeftovers("r1")
}

// A macvlan NIC on a host interface: here one end of a veth pair of the
// test's own, so nothing of the host's is touched.
func TestMacvlanNIC(t *testing.T) {
	e := newEnv(t)
	parent := "lt" + e.netTag + "mv"
	h, err := netlink.NewHandle()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	attrs := netlink.NewLinkAttrs()
	attrs.Name = parent
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: parent + "p"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if l, err := h.LinkByName(parent); err == nil {
			h.LinkDel(l)
		}
	})
	link, _ := h.LinkByName(parent)
	h.LinkSetUp(link)
	e.createBusybox("m1", "network.0.type=macvlan", "network.0.parent="+parent)
	e.must("start", "m1")
	out, err := exec.Command("nsenter", "-n", "-t", strconv.Itoa(e.info("m1").PID), "ip", "-d", "link", "show", "eth0").CombinedOutput()
	if err != nil {
		t.Fatalf("ip -d link show eth0 in m1: %v: %s", err, out)
	}
	if !strings.Contains(string(out), "macvlan") || !strings.Contains(string(out), strings.ToLower(e.info("m1").NICs[0].HWAddr)) {
		t.Fatalf("m1's eth0 is not its macvlan:\n%s", out)
	}
	e.must("stop", "m1")
	e.assertNoNICLeftovers("m1")
}
