package manager

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"

	"lodge/config"
	"lodge/network"
)

// Port forwards ([proxy] in a container's configuration) and the NAT table
// of a network (network/forward.go), and network limits of a running
// container. A container's forwards go to its first bridged NIC, in the
// table inet lodge-nat-NET of that NIC's network, in a chain named from the
// container's kernel identity (netID), so that removing them never touches
// another container's.

// ensureNAT makes network r's NAT table (idempotent): the loopback SNAT
// that forwards from the host itself need, and the masquerade of its IPv4
// subnet when it was created with --nat.
func (m *Manager) ensureNAT(r networkRecord) error {
	conn, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	defer conn.CloseLasting()
	id := m.netID(r.Name)
	return network.NewNAT(conn, id).Ensure(network.BridgeName(id), r.subnet4(), r.subnet6(), r.NAT)
}

// applyForwards installs cfg's proxies of a running container to addr4/addr6
// (its first bridged NIC's addresses) in the table of network netName, and
// removes any it had in other networks' tables (its first NIC moved).
func (m *Manager) applyForwards(container string, cfg *config.Container, netName string, addr4, addr6 netip.Addr) error {
	names, proxies, err := cfg.ProxyList()
	if err != nil {
		return err
	}
	var fws []network.Forward
	var errs []error
	for i, p := range proxies {
		target, family := addr4, "IPv4"
		if p.Listen.Is6() {
			target, family = addr6, "IPv6"
		}
		if !target.IsValid() {
			errs = append(errs, fmt.Errorf("proxy.%s (%s): the container has no %s address on network %q; forward from an address of the other family, or give the network and NIC one",
				names[i], p, family, netName))
			continue
		}
		fws = append(fws, network.Forward{Proto: p.Proto, Listen: p.Listen, HostPort: p.HostPort, Target: target, TargetPort: p.ContainerPort})
	}
	id := m.netID(container)
	errs = append(errs, m.eachNAT(func(r networkRecord, nat *network.NAT) error {
		if r.Name != netName {
			return nat.RemoveForwards(id)
		}
		if len(fws) > 0 {
			if err := m.ensureNAT(r); err != nil {
				return err
			}
		}
		return nat.SetForwards(id, fws)
	}))
	return errors.Join(errs...)
}

// removeForwards removes the container's forwards from every network's
// table; missing tables and chains are fine.
func (m *Manager) removeForwards(container string) error {
	id := m.netID(container)
	return m.eachNAT(func(_ networkRecord, nat *network.NAT) error { return nat.RemoveForwards(id) })
}

// eachNAT calls f with every network's NAT table, on one nftables
// connection, and joins the errors.
func (m *Manager) eachNAT(f func(networkRecord, *network.NAT) error) error {
	records, err := m.networkRecords()
	if err != nil {
		return err
	}
	conn, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	defer conn.CloseLasting()
	var errs []error
	for _, r := range records {
		errs = append(errs, f(r, network.NewNAT(conn, m.netID(r.Name))))
	}
	return errors.Join(errs...)
}

// checkProxies refuses a forward of a host port (protocol, address, port)
// that another container's configuration already forwards, naming it.
// Called with the networks' lock held (prepareNICs), like checkNICs.
func (m *Manager) checkProxies(container string, cfg *config.Container) error {
	names, mine, err := cfg.ProxyList()
	if err != nil || len(mine) == 0 {
		return err
	}
	others, _ := m.store.Names()
	var errs []error
	for _, other := range others {
		if other == container {
			continue
		}
		ocfg, err := config.Load(m.store.ConfigPath(other))
		if err != nil {
			continue
		}
		onames, theirs, err := ocfg.ProxyList()
		if err != nil {
			continue
		}
		for i, p := range mine {
			for j, q := range theirs {
				if p.Overlaps(q) {
					errs = append(errs, fmt.Errorf("proxy.%s: %s %s port %d is already forwarded by container %s (proxy.%s = %q); choose another host port or listen address, or remove it there (lodge config set %s proxy.%s=)",
						names[i], p.Proto, p.Listen, p.HostPort, other, onames[j], q, other, onames[j]))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// applyNetworkLive brings a running container up to date with
// cfg after a configuration change from old: the network limits on each
// bridged NIC's host end, and the port forwards. A NIC that is not
// attached (no host veth) is skipped: its limits apply when it is.
func (m *Manager) applyNetworkLive(name string, old, cfg *config.Container) error {
	var errs []error
	if old == nil || old.Limits.Network != cfg.Limits.Network {
		h, err := netlink.NewHandle()
		if err != nil {
			return err
		}
		defer h.Close()
		for i, nic := range cfg.Networks {
			if nic.Kind() != config.NICBridged {
				continue
			}
			ifname := nic.InterfaceName(i)
			if _, err := h.LinkByName(network.HostVethName(m.netID(name), ifname)); err != nil {
				continue // not attached
			}
			if err := network.SetLimits(h, m.netID(name), ifname, network.LimitsOf(cfg.Limits.Network)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	// Changed NICs take effect at the next start, and the forwards with them.
	if old == nil || !maps.Equal(old.Proxies, cfg.Proxies) {
		errs = append(errs, m.refreshForwards(name, cfg))
	}
	return errors.Join(errs...)
}

// refreshForwards installs cfg's forwards of a running container to the
// addresses its first bridged NIC was given at start (its plan), or
// removes them when it has none.
func (m *Manager) refreshForwards(name string, cfg *config.Container) error {
	if len(cfg.Proxies) == 0 {
		return m.removeForwards(name)
	}
	plan, err := network.ReadAttachments(m.store.NICsPath(name))
	if err != nil {
		return err
	}
	for _, a := range plan {
		if a.Kind == network.KindBridged {
			return m.applyForwards(name, cfg, a.Network, a.Address4, a.Address6)
		}
	}
	return errors.New("the forwards ([proxy]) need a bridged NIC to forward to (e.g. network.0.network=default); they apply at the next start")
}

// proxyInfos are the configured forwards for `lodge info` and `list`, as
// "NAME PROTO:LISTEN:HOSTPORT:CONTAINERPORT".
func proxyInfos(cfg *config.Container) []string {
	names, proxies, err := cfg.ProxyList()
	if err != nil {
		return nil
	}
	out := make([]string, len(names))
	for i := range names {
		out[i] = names[i] + " " + proxies[i].String()
	}
	return out
}
