package manager

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/vishvananda/netlink"

	"lodge/config"
	"lodge/migrate"
	"lodge/network"
)

// Attaching a container to its networks (the data plane). Start plans every
// NIC under the networks' lock: it brings each network up (bridge, tables,
// dnsmasq), gives each bridged NIC its address (a static one, or one picked
// from its MAC that no other NIC holds) and writes the NIC's DHCP host entry,
// so that dnsmasq hands out exactly that address and the container's name
// resolves on the network. The plan goes to ROOT/run/NAME.nics.json; the
// monitor makes the interfaces from it at each boot, before init runs, and
// releases everything when the container stops. A container whose monitor
// was killed is released by the next lodge command that finds it stopped
// (cleanupStale).

// attachNetworks plans the container's NICs and records the plan for its
// monitor. Warnings of the networks' host checks go to progress.
func (m *Manager) attachNetworks(ctx context.Context, name string, cfg *config.Container, progress func(string, ...any)) error {
	if !hasNICs(cfg) {
		return nil
	}
	unlock, err := m.lockNetworks(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	plan, err := m.planNICs(name, cfg, progress)
	if err == nil {
		err = network.WriteAttachments(m.store.NICsPath(name), plan)
	}
	if err != nil {
		for _, a := range plan {
			network.Release(a)
		}
		return fmt.Errorf("networks of %s: %w", name, err)
	}
	return nil
}

func hasNICs(cfg *config.Container) bool {
	for _, n := range cfg.Networks {
		if n.Kind() != config.NICNone {
			return true
		}
	}
	return false
}

// planNICs turns the configured NICs into attachments. The networks' lock
// is held. On failure it returns the attachments planned so far, whose
// host entries the caller releases.
func (m *Manager) planNICs(name string, cfg *config.Container, progress func(string, ...any)) ([]network.Attachment, error) {
	h, err := netlink.NewHandle()
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()
	var plan []network.Attachment
	up := map[string]networkRecord{}
	var static map[string]string // other containers' static addresses, read once (every configuration)
	for i, nic := range cfg.Networks {
		a := network.Attachment{Kind: nic.Kind(), NIC: m.nicOf(name, i, nic)}
		switch nic.Kind() {
		case config.NICNone:
			continue
		case config.NICMacvlan:
			a.Parent = nic.Parent
			plan = append(plan, a)
			continue
		}
		r, ok := up[nic.NetworkName()]
		if !ok {
			if r, err = m.networkForStart(h, nic.NetworkName(), progress); err != nil {
				return plan, fmt.Errorf("network.%d: %w", i, err)
			}
			up[r.Name] = r
		}
		if static == nil {
			static = m.staticAddresses("")
		}
		if err := m.addressNIC(&a, r, name, nic, static); err != nil {
			return plan, fmt.Errorf("network.%d: %w", i, err)
		}
		plan = append(plan, a)
	}
	return plan, nil
}

// nicOf is the kernel side of NIC i: the container's kernel identity (with
// the host's network tag), name, MAC and MTU.
func (m *Manager) nicOf(container string, i int, nic config.NIC) network.NIC {
	n := network.NIC{Container: m.netID(container), Name: nic.InterfaceName(i), MTU: nic.MTU}
	if mac, err := net.ParseMAC(nic.HWAddr); err == nil {
		n.MAC = mac
	} else {
		n.MAC = network.MAC(container + "/" + n.Name)
	}
	return n
}

// networkForStart reads a network and brings it up; the default network is
// created on first use.
func (m *Manager) networkForStart(h *netlink.Handle, name string, progress func(string, ...any)) (networkRecord, error) {
	r, err := m.readNetwork(name)
	if errors.Is(err, ErrNotFound) && name == config.DefaultNetwork {
		if _, err := m.createNetworkLocked(name, NetworkOptions{IPv6: "auto"}); err != nil {
			return r, fmt.Errorf("make the default network: %w", err)
		}
		r, err = m.readNetwork(name)
	}
	if err != nil {
		return r, err
	}
	warnings, err := m.bringUp(h, r)
	for _, w := range warnings {
		progress("warning: network %s: %s", name, w)
	}
	if err != nil {
		return r, fmt.Errorf("bring network %q up: %w", name, err)
	}
	return r, nil
}

// addressNIC gives a bridged NIC its bridge, addresses and DHCP host entry
// on network r.
func (m *Manager) addressNIC(a *network.Attachment, r networkRecord, container string, nic config.NIC, static map[string]string) error {
	a.Network, a.NetID, a.Dir = r.Name, m.netID(r.Name), filepath.Dir(m.networkPath(r.Name))
	a.NIC.Bridge = network.BridgeName(a.NetID)
	a.HostKey = container + "." + a.NIC.Name
	subnet4, subnet6 := r.subnet4(), r.subnet6()
	taken, err := takenAddresses(a.Dir, a.HostKey, r.Name, static)
	if err != nil {
		return err
	}
	if addr, err := netip.ParseAddr(nic.IPv4); err == nil {
		if holder := taken.held[addr]; holder != "" {
			return fmt.Errorf("ipv4 %s is held by %s (given by DHCP while it runs); stop it or choose another address", addr, holder)
		}
		a.Address4 = addr
		a.NIC.IPv4 = netip.PrefixFrom(addr, subnet4.Bits())
		a.NIC.Gateway4 = network.Gateway(subnet4).Addr()
	} else {
		if a.Address4, err = network.PickAddress(subnet4, a.NIC.HWAddr(), taken.has); err != nil {
			return fmt.Errorf("network %q: %w", r.Name, err)
		}
	}
	if addr, err := netip.ParseAddr(nic.IPv6); err == nil {
		a.Address6 = addr
		a.NIC.IPv6 = netip.PrefixFrom(addr, subnet6.Bits())
		a.NIC.Gateway6 = network.Gateway(subnet6).Addr()
	} else {
		a.Address6 = network.EUI64(subnet6, a.NIC.HWAddr())
	}
	host := network.DHCPHost{Key: a.HostKey, MAC: a.NIC.HWAddr(), IPv4: a.Address4, IPv6: a.Address6, Name: container}
	if err := network.WriteDHCPHost(a.Dir, host); err != nil {
		return fmt.Errorf("dhcp host entry of %s: %w", a.HostKey, err)
	}
	return nil
}

// addressesTaken are the IPv4 addresses of a network a NIC may not get.
type addressesTaken struct {
	held   map[netip.Addr]string // by other NICs' host entries (running containers): their keys
	static map[string]string     // "NETWORK ADDRESS" given as static by other containers
	net    string
}

func (t addressesTaken) has(a netip.Addr) bool {
	_, isStatic := t.static[t.net+" "+a.String()]
	return t.held[a] != "" || isStatic
}

// takenAddresses collects which addresses of network netName a NIC (key)
// may not be given: those other NICs' host entries hold and those other
// containers' configurations give as static.
func takenAddresses(dir, key, netName string, static map[string]string) (addressesTaken, error) {
	hosts, err := network.DHCPHosts(dir)
	if err != nil {
		return addressesTaken{}, err
	}
	t := addressesTaken{held: map[netip.Addr]string{}, static: static, net: netName}
	for _, h := range hosts {
		if h.Key != key {
			t.held[h.IPv4] = h.Key
		}
	}
	return t, nil
}

// releaseNICs removes whatever the container's NICs still hold on the host
// (veth, ifb, rules, host entries, leases) and the plan. Best effort: it is
// what a stop or a crash leaves to clean, and it reports what it could not.
func (m *Manager) releaseNICs(name string) error {
	plan, err := network.ReadAttachments(m.store.NICsPath(name))
	if err != nil || len(plan) == 0 {
		if err != nil {
			return errors.Join(err, network.WriteAttachments(m.store.NICsPath(name), nil))
		}
		return nil
	}
	h, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()
	var errs []error
	for _, a := range plan {
		errs = append(errs, network.Detach(h, a), network.Release(a))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("release the NICs of %s: %w", name, err)
	}
	return network.WriteAttachments(m.store.NICsPath(name), nil)
}

// releaseStoppedNICs releases the NICs of a container found stopped whose
// plan is still there: its monitor was killed, then its init died, and
// nobody was left to give its addresses back and remove its rules. It
// runs only if the container's lock is free at once (list and info never
// wait), and checks again under the lock that nothing runs.
func (m *Manager) releaseStoppedNICs(name string) {
	if _, err := os.Stat(m.store.NICsPath(name)); err != nil {
		return
	}
	now, cancel := context.WithCancel(context.Background())
	cancel()
	lock, err := m.store.Lock(now, name)
	if err != nil {
		return
	}
	defer lock.Unlock()
	if st, err := m.liveState(name); err == nil && st == nil {
		m.cleanupStale(name)
	}
}

// addAttachments fills in the running container's NICs' live addresses
// and host interfaces from its plan.
func (m *Manager) addAttachments(nics []NICInfo, name string) {
	plan, _ := network.ReadAttachments(m.store.NICsPath(name))
	for _, a := range plan {
		for i := range nics {
			if nics[i].Name != a.NIC.Name {
				continue
			}
			if a.Address4.IsValid() {
				nics[i].Address4 = a.Address4.String()
			}
			if a.Address6.IsValid() {
				nics[i].Address6 = a.Address6.String()
			}
			if a.Kind == network.KindBridged {
				nics[i].HostIf = a.NIC.HostName()
			}
		}
	}
}

// releaseNICsOrWarn is releaseNICs after a failed start or restore: its
// own failure is only reported, the first error is the one that counts.
func (m *Manager) releaseNICsOrWarn(name string, progress func(string, ...any)) {
	if err := m.releaseNICs(name); err != nil {
		progress("warning: %v", err)
	}
}

// recordNICs is the running container's NICs as its start planned them,
// for a checkpoint's record.
func (m *Manager) recordNICs(name string) ([]migrate.RecordNIC, error) {
	plan, err := network.ReadAttachments(m.store.NICsPath(name))
	if err != nil {
		return nil, err
	}
	var out []migrate.RecordNIC
	for _, a := range plan {
		out = append(out, migrate.RecordNIC{
			Name: a.NIC.Name, Kind: a.Kind, MAC: a.NIC.HWAddr().String(),
			Network: a.Network, Address4: a.Address4, Address6: a.Address6,
		})
	}
	return out, nil
}

// sameNICs checks that the NICs a restore just planned are those of the
// checkpoint: the same names, kinds, MACs and networks, and the same
// addresses, which the restored processes keep using (a DHCP client's
// lease is in its memory). A configuration changed since the checkpoint,
// or an address taken meanwhile by another container, is refused with
// what differs.
func (m *Manager) sameNICs(name string, rec migrate.Record) error {
	now, err := m.recordNICs(name)
	if err != nil {
		return err
	}
	return compareNICs(rec.NICs, now)
}

// compareNICs says how the NICs planned now differ from those recorded at
// the checkpoint, or nil.
func compareNICs(recorded, now []migrate.RecordNIC) error {
	byName := map[string]migrate.RecordNIC{}
	for _, n := range now {
		byName[n.Name] = n
	}
	var diffs []string
	for _, r := range recorded {
		n, ok := byName[r.Name]
		delete(byName, r.Name)
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("%s is no longer configured", r.Name))
		case n.Kind != r.Kind || n.Network != r.Network:
			diffs = append(diffs, fmt.Sprintf("%s was %s, now %s", r.Name, describeNIC(r), describeNIC(n)))
		case n.MAC != r.MAC:
			diffs = append(diffs, fmt.Sprintf("%s had MAC %s, now %s", r.Name, r.MAC, n.MAC))
		case n.Address4 != r.Address4:
			diffs = append(diffs, fmt.Sprintf("%s had IPv4 %s, now would get %s (is it another container's now?)", r.Name, addrOrNone(r.Address4), addrOrNone(n.Address4)))
		case n.Address6 != r.Address6:
			diffs = append(diffs, fmt.Sprintf("%s had IPv6 %s, now would get %s", r.Name, addrOrNone(r.Address6), addrOrNone(n.Address6)))
		}
	}
	for nic := range byName {
		diffs = append(diffs, fmt.Sprintf("%s was added after the checkpoint", nic))
	}
	if len(diffs) == 0 {
		return nil
	}
	sort.Strings(diffs)
	return fmt.Errorf("its NICs differ from the checkpoint's: %s; restore the configuration the checkpoint was made with, or start the container afresh (lodge start --fresh)", strings.Join(diffs, "; "))
}

func describeNIC(n migrate.RecordNIC) string {
	if n.Kind == network.KindBridged {
		return "on network " + n.Network
	}
	return n.Kind
}

func addrOrNone(a netip.Addr) string {
	if !a.IsValid() {
		return "none"
	}
	return a.String()
}
