package manager

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"

	"lodge/internal/atomicfile"
	"lodge/internal/helper"
	"lodge/internal/store"
	"lodge/network"
)

// Each managed network has its own dnsmasq (DHCP with fixed leases, the
// containers' names, router advertisements; see network/dnsmasq.go), run by
// lodge-helper's supervisor, which starts it again whenever it dies. The
// supervisor is recorded in ROOT/run/networks/NAME.json; dnsmasq's own pid
// is in its pid file (network.DnsmasqPID).

// dnsDomain is the DNS domain of every network's containers.
const dnsDomain = "lodge"

// dhcpRecord is ROOT/run/networks/NAME.json.
type dhcpRecord struct {
	Supervisor store.Process `json:"supervisor"`
}

func (m *Manager) dhcpRecordPath(name string) string {
	return filepath.Join(m.store.RunDir(), "networks", name+".json")
}

func (m *Manager) readDHCPRecord(name string) (dhcpRecord, bool) {
	var rec dhcpRecord
	data, err := os.ReadFile(m.dhcpRecordPath(name))
	if err != nil || json.Unmarshal(data, &rec) != nil {
		return rec, false
	}
	return rec, true
}

func (m *Manager) dhcpConfig(r networkRecord) network.DHCPConfig {
	id := m.netID(r.Name)
	return network.DHCPConfig{
		Network: id, Bridge: network.BridgeName(id), IPv4: r.subnet4(), IPv6: r.subnet6(),
		Dir: filepath.Dir(m.networkPath(r.Name)), Domain: dnsDomain, Upstream: r.NAT,
	}
}

// ensureDHCP starts the network's dnsmasq under the supervisor unless it
// runs with the current configuration, and waits until dnsmasq listens on
// the bridge.
func (m *Manager) ensureDHCP(r networkRecord) error {
	c := m.dhcpConfig(r)
	if rec, ok := m.readDHCPRecord(r.Name); ok && rec.Supervisor.Alive() {
		conf, _ := os.ReadFile(filepath.Join(c.Dir, network.DnsmasqConfName))
		if string(conf) == network.RenderDnsmasqConf(c) {
			return m.waitDHCP(c, rec.Supervisor, 5*time.Second) // running, or being restarted
		}
		// Started by an older lodge with another configuration: restart.
		if err := m.stopDHCP(r.Name); err != nil {
			return err
		}
	}
	// A dnsmasq whose supervisor was killed still holds the ports.
	if pid, ok := network.DnsmasqPID(c.Dir); ok {
		if p, err := store.ProcessOf(pid); err == nil {
			signalAndWait(p, syscall.SIGTERM, 5*time.Second)
		}
	}
	// dnsmasq drops to its own user: it must reach the host directories.
	if err := os.Chmod(m.networksDir(), 0o711); err != nil {
		return err
	}
	if err := network.PrepareDHCPDir(c); err != nil {
		return err
	}
	helperPath, err := helper.FindHelper(m.self)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(m.dhcpRecordPath(r.Name)), 0o700); err != nil {
		return err
	}
	logPath := filepath.Join(c.Dir, network.DnsmasqLogName)
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	os.Remove(filepath.Join(c.Dir, network.DnsmasqPidName))
	cmd := exec.Command(helperPath, network.DnsmasqArgs(c)...)
	cmd.Args[0] = "lodge-dnsmasq-supervisor"
	cmd.Env = append(m.monitorEnv(), "_LODGE_SUPERVISE=1")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start dnsmasq for network %q: %w", r.Name, err)
	}
	go cmd.Wait()
	sup, err := store.ProcessOf(cmd.Process.Pid)
	if err == nil {
		var data []byte
		data, err = json.Marshal(dhcpRecord{Supervisor: sup})
		if err == nil {
			err = atomicfile.WriteRuntime(m.dhcpRecordPath(r.Name), data, 0o644)
		}
	}
	if err == nil {
		err = m.waitDHCP(c, sup, 5*time.Second)
	}
	if err != nil {
		cmd.Process.Signal(syscall.SIGTERM) // the supervisor we just started
		signalAndWait(sup, 0, 5*time.Second)
		os.Remove(m.dhcpRecordPath(r.Name))
		return fmt.Errorf("network %q: dnsmasq: %w", r.Name, err)
	}
	return nil
}

// waitDHCP waits until the supervisor's dnsmasq listens on the gateway's
// port 53. It fails early when the supervisor died, and names who holds the
// ports when dnsmasq does not come up.
func (m *Manager) waitDHCP(c network.DHCPConfig, sup store.Process, timeout time.Duration) error {
	gw := network.Gateway(c.IPv4).Addr()
	deadline := time.Now().Add(timeout)
	for {
		if pid, ok := network.DnsmasqPID(c.Dir); ok && supervisedBy(pid, sup) && network.ListensOn(pid, gw, 53) {
			return nil
		}
		if !sup.Alive() || time.Now().After(deadline) {
			var taken []string
			for _, port := range []int{53, 67} {
				users, _ := network.PortUsers(gw, port)
				for _, u := range users {
					if !strings.HasPrefix(u, "dnsmasq (pid ") || port == 53 {
						taken = append(taken, u)
					}
				}
			}
			msg := fmt.Sprintf("did not come up on %s within %v", c.Bridge, timeout)
			if !sup.Alive() {
				msg = "its supervisor exited"
			}
			if len(taken) > 0 {
				msg += "; the ports it needs are taken by " + strings.Join(taken, ", ") + ": stop that service or make it listen elsewhere (bind-interfaces, listen-address)"
			}
			return fmt.Errorf("%s; see %s", msg, filepath.Join(c.Dir, network.DnsmasqLogName))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// supervisedBy reports whether pid is a child of sup.
func supervisedBy(pid int, sup store.Process) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 1 && f[1] == strconv.Itoa(sup.PID)
}

// stopDHCP stops the network's dnsmasq and its supervisor, and removes the
// record; none running is no error.
func (m *Manager) stopDHCP(name string) error {
	var errs []error
	if rec, ok := m.readDHCPRecord(name); ok && rec.Supervisor.Alive() {
		// It passes SIGTERM on and exits with dnsmasq.
		if !signalAndWait(rec.Supervisor, syscall.SIGTERM, 10*time.Second) {
			errs = append(errs, fmt.Errorf("the dnsmasq supervisor (pid %d) of network %q did not stop within 10s", rec.Supervisor.PID, name))
		}
	}
	dir := filepath.Dir(m.networkPath(name))
	if pid, ok := network.DnsmasqPID(dir); ok { // unsupervised (its supervisor was killed)
		if p, err := store.ProcessOf(pid); err == nil && !signalAndWait(p, syscall.SIGTERM, 10*time.Second) {
			errs = append(errs, fmt.Errorf("dnsmasq (pid %d) of network %q did not stop within 10s", pid, name))
		}
	}
	if len(errs) == 0 {
		if err := os.Remove(m.dhcpRecordPath(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// dhcpState is NetworkInfo.DHCP: "running (pid N)", "restarting" or "stopped"
// (or running without a supervisor, which was killed).
func (m *Manager) dhcpState(name string) string {
	rec, ok := m.readDHCPRecord(name)
	pid, running := network.DnsmasqPID(filepath.Dir(m.networkPath(name)))
	switch {
	case (!ok || !rec.Supervisor.Alive()) && running:
		return fmt.Sprintf("running (pid %d) without its supervisor: not restarted if it dies", pid)
	case !ok || !rec.Supervisor.Alive():
		return "stopped"
	case running && supervisedBy(pid, rec.Supervisor):
		return fmt.Sprintf("running (pid %d)", pid)
	}
	return "restarting"
}

// networkHostChecks are the checks at network start: err for what stops
// the network's dnsmasq or traffic (port 53 on the gateway held by another
// process, the subnet routed through another interface), warnings for what
// may (a wildcard listener on port 53, IP forwarding off with NAT).
func (m *Manager) networkHostChecks(r networkRecord) (warnings []string, err error) {
	c := m.dhcpConfig(r)
	own, _ := network.DnsmasqPID(c.Dir)
	var fatal []string
	h, err := netlink.NewHandle()
	if err != nil {
		return nil, err
	}
	defer h.Close()
	for _, subnet := range []netip.Prefix{r.subnet4(), r.subnet6()} {
		if !subnet.IsValid() {
			continue
		}
		uses, err := network.UsedBy(h, subnet)
		if err != nil {
			return nil, err
		}
		for _, u := range uses {
			if !strings.Contains(u, " dev "+c.Bridge+" ") && !strings.HasSuffix(u, " on "+c.Bridge) {
				fatal = append(fatal, fmt.Sprintf("subnet %s is already routed elsewhere: %s; remove that route or address, or delete and create the network with another --subnet", subnet, u))
			}
		}
	}
	gw := network.Gateway(r.subnet4()).Addr()
	var users []string
	// With its own dnsmasq on the gateway's port 53 (every start of a
	// container on the network), skip the scan of every process's sockets.
	if own == 0 || !network.ListensOn(own, gw, 53) {
		if users, err = network.PortUsers(gw, 53); err != nil {
			return nil, err
		}
	}
	for _, u := range users {
		switch {
		case own != 0 && strings.Contains(u, fmt.Sprintf("(pid %d) ", own)):
		case strings.Contains(u, " on "+gw.String()+":53/"):
			fatal = append(fatal, fmt.Sprintf("port 53 on the gateway %s is taken by %s: the network's dnsmasq needs it; stop that service or make it listen elsewhere", gw, u))
		default:
			warnings = append(warnings, fmt.Sprintf("%s listens on port 53 of every address: the network's dnsmasq (on %s) may fail to start; make it listen on its own addresses only (bind-interfaces, listen-address)", u, gw))
		}
	}
	if r.NAT {
		if on, err := network.IPForwarding(); err == nil && !on {
			warnings = append(warnings, "IP forwarding is off (net.ipv4.ip_forward = 0): NAT to the outside needs it; lodge does not turn it on (sysctl -w net.ipv4.ip_forward=1, and in /etc/sysctl.d to keep it)")
		}
	}
	if len(fatal) > 0 {
		return warnings, fmt.Errorf("network %q: %s", r.Name, strings.Join(fatal, "; "))
	}
	return warnings, nil
}
