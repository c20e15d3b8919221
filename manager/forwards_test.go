package manager

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"lodge/config"
	"lodge/internal/store"
	"lodge/internal/testreq"
	"lodge/network"
)

// TestCheckProxies refuses a host port another container forwards, and
// names that container and its key; other ports, protocols and families
// pass, and the container's own earlier value does not count.
func TestCheckProxies(t *testing.T) {
	m := &Manager{store: &store.Store{Root: t.TempDir()}, host: config.DefaultHost()}
	save := func(name string, proxies map[string]string) *config.Container {
		cfg := config.Default()
		cfg.Proxies = proxies
		os.MkdirAll(filepath.Dir(m.store.ConfigPath(name)), 0o700)
		if err := cfg.Save(m.store.ConfigPath(name)); err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	save("web", map[string]string{"http": "tcp:0.0.0.0:8080:80"})
	mine := save("api", map[string]string{"http": "tcp:127.0.0.1:8080:80"})
	err := m.checkProxies("api", mine)
	if err == nil || !strings.Contains(err.Error(), "container web (proxy.http") || !strings.Contains(err.Error(), "lodge config set web proxy.http=") {
		t.Errorf("a clash with web's 0.0.0.0:8080: %v", err)
	}
	for _, ok := range []string{"tcp:0.0.0.0:8081:80", "udp:0.0.0.0:8080:80", "tcp:[::]:8080:80"} {
		mine.Proxies["http"] = ok
		if err := m.checkProxies("api", mine); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	save("api", map[string]string{"http": "tcp:[::]:8080:80"})
	if err := m.checkProxies("web", save("web", map[string]string{"http": "tcp:0.0.0.0:8080:81"})); err != nil {
		t.Errorf("web's own forward counted as a clash: %v", err)
	}
}

// TestApplyNetworkLimitsLive applies changed limits.network.* to the host
// end of a bridged NIC the way config set does on a running container. The
// data plane (veths at start) is not in this branch, so the test makes the
// host end itself: a veth pair of its own in the host's namespace, named as
// the monitor names it, removed at the end.
func TestApplyNetworkLimitsLive(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test (-short)")
	}
	if os.Geteuid() != 0 {
		testreq.Skip(t, "root", "creating veths needs root")
	}
	m := &Manager{store: &store.Store{Root: t.TempDir()}, host: config.DefaultHost()}
	m.host.Network.Tag = fmt.Sprintf("l%d", os.Getpid()%100000)
	h, err := netlink.NewHandle()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	const ctr = "lim"
	name := network.HostVethName(m.netID(ctr), "eth0")
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: fmt.Sprintf("lp%d", os.Getpid()%10000000)}
	if err := h.LinkAdd(veth); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if l, err := h.LinkByName(name); err == nil {
			h.LinkDel(l)
		}
		network.SetLimits(h, m.netID(ctr), "eth0", network.Limits{}) // removes the ifb
	})
	old := config.Default()
	old.Networks = []config.NIC{{Name: "eth0"}}
	cfg := old.Clone()
	cfg.Limits.Network = config.NetworkLimits{Ingress: 100e6, Egress: 10e6}
	if err := m.applyNetworkLive(ctr, 0, old, cfg); err != nil {
		t.Fatal(err)
	}
	tbfRate := func(linkName string) uint64 {
		l, err := h.LinkByName(linkName)
		if err != nil {
			return 0
		}
		qs, _ := h.QdiscList(l)
		for _, q := range qs {
			if tbf, ok := q.(*netlink.Tbf); ok {
				return tbf.Rate * 8
			}
		}
		return 0
	}
	if got := tbfRate(name); got != 100e6 {
		t.Errorf("ingress tbf on %s: %d bit/s, want 100Mbit", name, got)
	}
	if got := tbfRate(network.IfbName(m.netID(ctr), "eth0")); got != 10e6 {
		t.Errorf("egress tbf on the ifb: %d bit/s, want 10Mbit", got)
	}
	old, cfg = cfg, cfg.Clone()
	cfg.Limits.Network.Egress = 0
	if err := m.applyNetworkLive(ctr, 0, old, cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := h.LinkByName(network.IfbName(m.netID(ctr), "eth0")); err == nil {
		t.Error("the ifb stayed after the egress limit was removed")
	}
	if got := tbfRate(name); got != 100e6 {
		t.Errorf("ingress tbf after removing egress: %d bit/s", got)
	}
	// A NIC that is not attached is skipped, not an error.
	cfg.Networks = append(cfg.Networks, config.NIC{Name: "eth1"})
	old, cfg = cfg, cfg.Clone()
	cfg.Limits.Network.Ingress = 0
	if err := m.applyNetworkLive(ctr, 0, old, cfg); err != nil {
		t.Fatal(err)
	}
	if got := tbfRate(name); got != 0 {
		t.Errorf("ingress tbf stayed after removing the limit: %d", got)
	}
}
