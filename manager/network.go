package manager

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"lodge/config"
	"lodge/internal/atomicfile"
	"lodge/network"
)

// Managed networks: the management plane. A network is a record in
//
//	ROOT/networks/NAME/network.json
//
// (written atomically, changed under the flock of ROOT/networks), a bridge
// and an nftables table of the bridge family (anti-spoofing) in the host's
// network namespace, named from the network's kernel identity (netID).
// Attaching containers (veths at start, dnsmasq, port forwards) is the data
// plane's work, not this file's.
//
// NAT: a network records nat = true when created with --nat; bringUp then
// adds the masquerade rule to its table inet lodge-nat-NET (forwards.go,
// network/forward.go), which also holds the port forwards. Tests never ask
// for NAT.

// errDamaged marks a network whose record cannot be read: list shows it
// with the damage, the other networks' work goes on without it.
var errDamaged = errors.New("damaged")

// ErrInUse marks a refusal because something still uses the object (a
// network that containers' configurations name).
var ErrInUse = errors.New("in use")

// NetworkOptions are what `lodge network create` takes.
type NetworkOptions struct {
	Subnet string // IPv4 subnet, e.g. 10.12.34.0/24; "" picks a free /24 in 10.0.0.0/8
	IPv6   string // IPv6 /64, "auto" for a unique local one, "" for none
	NAT    bool   // masquerade the IPv4 subnet to the outside (ensureNAT)
}

// networkRecord is network.json.
type networkRecord struct {
	Name    string    `json:"name"`
	IPv4    string    `json:"ipv4"`
	IPv6    string    `json:"ipv6,omitempty"`
	NAT     bool      `json:"nat"`
	Created time.Time `json:"created"`
}

func (r networkRecord) subnet4() netip.Prefix { p, _ := netip.ParsePrefix(r.IPv4); return p }
func (r networkRecord) subnet6() netip.Prefix { p, _ := netip.ParsePrefix(r.IPv6); return p }

// NetworkInfo describes a managed network for `lodge network list/show`.
type NetworkInfo struct {
	Name     string    `json:"name"`
	Bridge   string    `json:"bridge"`
	Table    string    `json:"nftables_table"` // table bridge TABLE (anti-spoofing)
	IPv4     string    `json:"ipv4"`
	Gateway4 string    `json:"gateway4"`
	IPv6     string    `json:"ipv6,omitempty"`
	Gateway6 string    `json:"gateway6,omitempty"`
	NAT      bool      `json:"nat"`
	State    string    `json:"state"` // "up", or "down" (no bridge: after a reboot, until it is used again)
	Created  time.Time `json:"created"`
	UsedBy   []string  `json:"used_by"`            // containers whose configuration names it
	DHCP     string    `json:"dhcp"`               // its dnsmasq: "running (pid N)", "restarting" or "stopped"
	Warnings []string  `json:"warnings,omitempty"` // Network only: host checks
}

func (m *Manager) networksDir() string { return filepath.Join(m.store.Root, "networks") }
func (m *Manager) networkPath(name string) string {
	return filepath.Join(m.networksDir(), name, "network.json")
}

// netID is a network's identity in the kernel: its name, or TAG-NAME with
// the host config's network.tag.
func (m *Manager) netID(name string) string {
	if m.host.Network.Tag == "" {
		return name
	}
	return m.host.Network.Tag + "-" + name
}

// lockNetworks takes the flock of ROOT/networks, which serialises changes
// of networks and the checks that read them (config set's addresses).
func (m *Manager) lockNetworks(ctx context.Context) (unlock func(), err error) {
	if err := m.store.Prepare(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(m.networksDir(), 0o700); err != nil {
		return nil, fmt.Errorf("networks: %w", err)
	}
	dir, err := os.Open(m.networksDir())
	if err != nil {
		return nil, fmt.Errorf("networks: %w", err)
	}
	for {
		err := unix.Flock(int(dir.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { dir.Close() }, nil
		}
		if err != unix.EWOULDBLOCK && err != unix.EINTR {
			dir.Close()
			return nil, fmt.Errorf("lock %s: %w", m.networksDir(), err)
		}
		select {
		case <-ctx.Done():
			dir.Close()
			return nil, fmt.Errorf("the networks are busy with another lodge command; stopped waiting: %w", ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func (m *Manager) readNetwork(name string) (networkRecord, error) {
	var r networkRecord
	if err := config.ValidateNetworkName(name); err != nil {
		return r, invalid(err) // also keeps "../x" out of paths
	}
	data, err := os.ReadFile(m.networkPath(name))
	if errors.Is(err, fs.ErrNotExist) {
		return r, kindError{fmt.Errorf("network %q does not exist; see lodge network list, or create it with lodge network create %s", name, name), ErrNotFound}
	}
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("network %q: %s is damaged (%v); remove it with lodge network delete %s: %w", name, m.networkPath(name), err, name, errDamaged)
	}
	return r, nil
}

// networkRecords reads every network's record, sorted by name.
func (m *Manager) networkRecords() ([]networkRecord, error) {
	entries, err := os.ReadDir(m.networksDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []networkRecord
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		r, err := m.readNetwork(e.Name())
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrInvalid) || errors.Is(err, errDamaged) {
			continue // a directory left by a create that crashed before its record, not lodge's, or damaged (Networks shows it)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// CreateNetwork creates a managed network: its record, its bridge (up, with
// the gateway addresses) and its anti-spoofing table. A given subnet must
// overlap no route or address of the host and no other lodge network; one
// left out is picked free of both.
func (m *Manager) CreateNetwork(ctx context.Context, name string, opts NetworkOptions) (NetworkInfo, error) {
	if err := config.ValidateNetworkName(name); err != nil {
		return NetworkInfo{}, invalid(err)
	}
	unlock, err := m.lockNetworks(ctx)
	if err != nil {
		return NetworkInfo{}, err
	}
	defer unlock()
	return m.createNetworkLocked(name, opts)
}

func (m *Manager) createNetworkLocked(name string, opts NetworkOptions) (NetworkInfo, error) {
	if r, err := m.readNetwork(name); err == nil {
		return NetworkInfo{}, kindError{fmt.Errorf("network %q already exists (subnet %s); see lodge network show %s", name, r.IPv4, name), ErrExists}
	}
	records, err := m.networkRecords()
	if err != nil {
		return NetworkInfo{}, err
	}
	h, err := netlink.NewHandle()
	if err != nil {
		return NetworkInfo{}, fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()
	used, err := network.UsedPrefixes(h)
	if err != nil {
		return NetworkInfo{}, err
	}
	for _, r := range records {
		for _, p := range []netip.Prefix{r.subnet4(), r.subnet6()} {
			if p.IsValid() {
				used = append(used, p)
			}
		}
	}
	rec := networkRecord{Name: name, NAT: opts.NAT, Created: time.Now().UTC().Truncate(time.Second)}
	v4, err := m.pickSubnet(h, records, opts.Subnet, false, used, name)
	if err != nil {
		return NetworkInfo{}, err
	}
	rec.IPv4 = v4.String()
	if opts.IPv6 != "" {
		v6, err := m.pickSubnet(h, records, opts.IPv6, true, used, name)
		if err != nil {
			return NetworkInfo{}, err
		}
		rec.IPv6 = v6.String()
	}
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return NetworkInfo{}, err
	}
	if err := os.MkdirAll(filepath.Dir(m.networkPath(name)), 0o700); err != nil {
		return NetworkInfo{}, err
	}
	if err := atomicfile.Write(m.networkPath(name), append(data, '\n'), 0o644); err != nil {
		os.RemoveAll(filepath.Dir(m.networkPath(name)))
		return NetworkInfo{}, err
	}
	warnings, err := m.bringUp(h, rec)
	if err != nil {
		m.tearDown(h, name)
		os.RemoveAll(filepath.Dir(m.networkPath(name)))
		return NetworkInfo{}, fmt.Errorf("create network %q: %w; nothing was kept", name, err)
	}
	info := m.networkInfo(h, rec, nil)
	info.Warnings = warnings
	return info, nil
}

// pickSubnet checks a given subnet, or picks a free one ("" for IPv4,
// "auto" for IPv6).
func (m *Manager) pickSubnet(h *netlink.Handle, records []networkRecord, given string, v6 bool, used []netip.Prefix, name string) (netip.Prefix, error) {
	flag, example := "--subnet", "10.12.34.0/24"
	if v6 {
		flag, example = "--ipv6", "fd12:3456:789a::/64"
	}
	if given == "" || v6 && given == "auto" {
		if v6 {
			return network.AllocateULA(machineID()+"/"+m.netID(name), used)
		}
		p, err := network.AllocateIPv4(network.DefaultPool, used, m.netID(name))
		if err != nil {
			return p, fmt.Errorf("%w; give one with --subnet", err)
		}
		return p, nil
	}
	p, err := netip.ParsePrefix(given)
	switch {
	case err != nil || p.Addr().Is6() != v6 || p.Addr().Is4In6():
		return p, invalid(fmt.Errorf("%s %q is not an IPv%s subnet; write e.g. %s", flag, given, map[bool]string{false: "4", true: "6"}[v6], example))
	case p != p.Masked():
		return p, invalid(fmt.Errorf("%s %s has host bits set; did you mean %s?", flag, given, p.Masked()))
	case !v6 && (p.Bits() < 8 || p.Bits() > 30):
		return p, invalid(fmt.Errorf("%s %s: use a prefix length between /8 and /30 (e.g. %s)", flag, given, example))
	case v6 && p.Bits() != 64:
		return p, invalid(fmt.Errorf("%s %s: IPv6 subnets are /64 (router advertisements need it), e.g. %s", flag, given, example))
	}
	for _, r := range records {
		for _, q := range []netip.Prefix{r.subnet4(), r.subnet6()} {
			if q.IsValid() && q.Overlaps(p) {
				return p, invalid(fmt.Errorf("%s %s overlaps lodge network %q (%s); choose another subnet, or leave %s out to have a free one picked", flag, p, r.Name, q, flag))
			}
		}
	}
	uses, err := network.UsedBy(h, p)
	if err != nil {
		return p, err
	}
	if len(uses) > 0 {
		return p, invalid(fmt.Errorf("%s %s overlaps what this host already uses: %s; choose another subnet, or leave %s out to have a free one picked", flag, p, strings.Join(uses, ", "), flag))
	}
	return p, nil
}

func machineID() string {
	b, _ := os.ReadFile("/etc/machine-id")
	return strings.TrimSpace(string(b))
}

// bringUp makes the network's bridge, anti-spoofing table, NAT table
// (masquerade only with NAT) and dnsmasq; calling it again changes nothing.
// When it starts the network (its bridge was missing or down: first use,
// or after a reboot) it runs the host checks: a fatal finding (the
// gateway's port 53 taken, the subnet routed elsewhere) is an error, the
// others (FORWARD drops, IP forwarding off with NAT) are returned as
// warnings. Later calls, one per container start, skip them.
func (m *Manager) bringUp(h *netlink.Handle, r networkRecord) (warnings []string, err error) {
	starting := !m.bridgeUp(h, r.Name)
	if _, err := network.EnsureBridge(h, network.BridgeConfig{Network: m.netID(r.Name), IPv4: r.subnet4(), IPv6: r.subnet6()}); err != nil {
		return nil, err
	}
	conn, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	defer conn.CloseLasting()
	if err := network.NewFirewall(conn, m.netID(r.Name)).Ensure(); err != nil {
		return nil, err
	}
	if starting {
		if warnings, err = m.networkHostChecks(r); err != nil {
			return warnings, err
		}
		warnings = append(warnings, forwardDropWarnings(network.BridgeName(m.netID(r.Name)))...)
	}
	if err := m.ensureNAT(r); err != nil {
		return warnings, err
	}
	return warnings, m.ensureDHCP(r)
}

// bridgeUp tells whether network name's bridge exists and is up.
func (m *Manager) bridgeUp(h *netlink.Handle, name string) bool {
	l, err := h.LinkByName(network.BridgeName(m.netID(name)))
	return err == nil && l.Attrs().Alias == network.BridgeAlias(m.netID(name)) && l.Attrs().Flags&unix.IFF_UP != 0
}

// tearDown removes the network's bridge and tables; missing ones are fine.
func (m *Manager) tearDown(h *netlink.Handle, name string) error {
	var errs []error
	errs = append(errs, m.stopDHCP(name))
	errs = append(errs, network.DeleteBridge(h, m.netID(name)))
	conn, err := nftables.New()
	if err != nil {
		errs = append(errs, err)
	} else {
		errs = append(errs, network.NewFirewall(conn, m.netID(name)).Delete())
		errs = append(errs, network.NewNAT(conn, m.netID(name)).Delete())
		conn.CloseLasting()
	}
	return errors.Join(errs...)
}

// EnsureDefaultNetwork creates the default network on first use (a free
// IPv4 /24 and a unique local IPv6 /64), or brings it up again; it returns
// its description.
func (m *Manager) EnsureDefaultNetwork(ctx context.Context) (NetworkInfo, error) {
	unlock, err := m.lockNetworks(ctx)
	if err != nil {
		return NetworkInfo{}, err
	}
	defer unlock()
	r, err := m.readNetwork(config.DefaultNetwork)
	if errors.Is(err, ErrNotFound) {
		return m.createNetworkLocked(config.DefaultNetwork, NetworkOptions{IPv6: "auto"})
	}
	if err != nil {
		return NetworkInfo{}, err
	}
	h, err := netlink.NewHandle()
	if err != nil {
		return NetworkInfo{}, err
	}
	defer h.Close()
	warnings, err := m.bringUp(h, r)
	if err != nil {
		return NetworkInfo{}, err
	}
	info := m.networkInfo(h, r, nil)
	info.Warnings = warnings
	return info, nil
}

// Networks describes every managed network, sorted by name.
func (m *Manager) Networks() ([]NetworkInfo, error) {
	records, err := m.networkRecords()
	if err != nil {
		return []NetworkInfo{}, err
	}
	h, err := netlink.NewHandle()
	if err != nil {
		return nil, err
	}
	defer h.Close()
	users := m.networkUsers()
	out := make([]NetworkInfo, 0, len(records))
	for _, r := range records {
		out = append(out, m.networkInfo(h, r, users[r.Name]))
	}
	return append(out, m.damagedNetworks(users)...), nil
}

// damagedNetworks describes the networks whose record is damaged: their
// name, state "damaged" and the damage as a warning.
func (m *Manager) damagedNetworks(users map[string][]string) []NetworkInfo {
	var out []NetworkInfo
	entries, _ := os.ReadDir(m.networksDir())
	for _, e := range entries {
		if _, err := m.readNetwork(e.Name()); e.IsDir() && errors.Is(err, errDamaged) {
			u := users[e.Name()]
			if u == nil {
				u = []string{}
			}
			out = append(out, NetworkInfo{Name: e.Name(), State: "damaged", UsedBy: u, Warnings: []string{err.Error()}})
		}
	}
	return out
}

// Network describes one network, with the host checks as warnings.
func (m *Manager) Network(name string) (NetworkInfo, error) {
	r, err := m.readNetwork(name)
	if err != nil {
		return NetworkInfo{}, err
	}
	h, err := netlink.NewHandle()
	if err != nil {
		return NetworkInfo{}, err
	}
	defer h.Close()
	info := m.networkInfo(h, r, m.networkUsers()[name])
	info.Warnings = m.networkWarnings(info)
	warnings, err := m.networkHostChecks(r)
	if err != nil {
		warnings = append(warnings, err.Error())
	}
	info.Warnings = append(info.Warnings, warnings...)
	if info.State == "up" && (!strings.HasPrefix(info.DHCP, "running") || strings.Contains(info.DHCP, "without")) {
		info.Warnings = append(info.Warnings, fmt.Sprintf("its dnsmasq is %s (DHCP and names for its containers): it is started again when a container on the network starts; see %s",
			info.DHCP, filepath.Join(filepath.Dir(m.networkPath(r.Name)), network.DnsmasqLogName)))
	}
	return info, nil
}

func (m *Manager) networkInfo(h *netlink.Handle, r networkRecord, users []string) NetworkInfo {
	info := NetworkInfo{
		Name: r.Name, Bridge: network.BridgeName(m.netID(r.Name)), Table: network.FirewallTable(m.netID(r.Name)),
		IPv4: r.IPv4, IPv6: r.IPv6, NAT: r.NAT, State: "down", Created: r.Created, UsedBy: users,
		DHCP: m.dhcpState(r.Name),
	}
	if info.UsedBy == nil {
		info.UsedBy = []string{}
	}
	if p := r.subnet4(); p.IsValid() {
		info.Gateway4 = network.Gateway(p).Addr().String()
	}
	if p := r.subnet6(); p.IsValid() {
		info.Gateway6 = network.Gateway(p).Addr().String()
	}
	if m.bridgeUp(h, r.Name) {
		info.State = "up"
	}
	return info
}

// networkWarnings are the read-only host checks of `lodge network show`.
func (m *Manager) networkWarnings(info NetworkInfo) []string {
	var out []string
	if info.State != "up" {
		out = append(out, fmt.Sprintf("bridge %s is missing (after a reboot, say); it is made again when a container on the network starts", info.Bridge))
	}
	return append(out, forwardDropWarnings(info.Bridge)...)
}

// forwardDropWarnings names each rule of the host's firewall that would
// drop the bridge's forwarded traffic (PITFALLS 27), with how to allow it.
func forwardDropWarnings(bridge string) []string {
	var out []string
	drops, err := network.ForwardDrops(-1)
	if err != nil {
		out = append(out, "could not check the host's FORWARD rules: "+err.Error())
	}
	for _, d := range drops {
		out = append(out, fmt.Sprintf("%s. Allow the bridge: nft insert rule %s %s %s iifname %s accept (and the same with oifname), or iptables -I DOCKER-USER -i %s -j ACCEPT where Docker manages the firewall; lodge does not change the host's firewall",
			d, d.Family, d.Table, d.Chain, bridge, bridge))
	}
	return out
}

// networkUsers maps each network to the containers whose configuration
// names it (sorted); a configuration that cannot be read counts for every
// network ("NAME (configuration unreadable)"), since it may name any.
func (m *Manager) networkUsers() map[string][]string {
	users := map[string][]string{}
	names, _ := m.store.Names()
	var broken []string
	for _, c := range names {
		cfg, err := config.Load(m.store.ConfigPath(c))
		if err != nil {
			broken = append(broken, c+" (configuration unreadable)")
			continue
		}
		for _, nic := range cfg.Networks {
			if n := nic.NetworkName(); n != "" && !slices.Contains(users[n], c) {
				users[n] = append(users[n], c)
			}
		}
	}
	if len(broken) > 0 {
		records, _ := m.networkRecords()
		for _, r := range records {
			users[r.Name] = append(users[r.Name], broken...)
		}
	}
	return users
}

// DeleteNetwork removes a network's bridge, tables and record. It is
// refused while a container's configuration names the network.
func (m *Manager) DeleteNetwork(ctx context.Context, name string) error {
	unlock, err := m.lockNetworks(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if err := config.ValidateNetworkName(name); err != nil {
		return invalid(err) // a name like ../containers/c1 must never reach RemoveAll
	}
	if _, err := os.Stat(filepath.Dir(m.networkPath(name))); err != nil {
		return kindError{fmt.Errorf("network %q does not exist; see lodge network list", name), ErrNotFound}
	}
	if users := m.networkUsers()[name]; len(users) > 0 {
		return kindError{fmt.Errorf("network %q is used by %s: remove their NICs on it first (lodge config set NAME network.N=) or delete them", name, strings.Join(users, ", ")), ErrInUse}
	}
	h, err := netlink.NewHandle()
	if err != nil {
		return err
	}
	defer h.Close()
	if err := m.tearDown(h, name); err != nil {
		return fmt.Errorf("delete network %q: %w; its record is kept, try again", name, err)
	}
	return os.RemoveAll(filepath.Dir(m.networkPath(name)))
}
