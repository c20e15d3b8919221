package manager

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"

	"lodge/config"
	"lodge/network"
)

// A container's NICs against the managed networks (network.go): what
// config set, config edit, create and copy check before they save.

// prepareNICs fills in what a container's NICs leave out (name, hwaddr),
// makes the default network if a NIC uses it, and checks every NIC against
// the networks: it exists, a static address lies in its subnet, is not its
// network, gateway or broadcast address, and no other container on the
// network has it. It returns the networks' lock, held until the
// configuration is saved (nil when the container has no NICs).
func (m *Manager) prepareNICs(ctx context.Context, container string, cfg *config.Container) (unlock func(), err error) {
	if len(cfg.Networks) == 0 {
		return func() {}, nil
	}
	for i := range cfg.Networks {
		nic := &cfg.Networks[i]
		if nic.Kind() == config.NICNone {
			continue
		}
		if nic.Name == "" {
			nic.Name = nic.InterfaceName(i)
		}
		if nic.HWAddr == "" {
			nic.HWAddr = network.MAC(container + "/" + nic.Name).String()
		}
		if nic.Kind() == config.NICBridged && nic.NetworkName() == config.DefaultNetwork {
			if _, err := m.EnsureDefaultNetwork(ctx); err != nil {
				return nil, fmt.Errorf("make the default network: %w", err)
			}
		}
	}
	unlock, err = m.lockNetworks(ctx)
	if err != nil {
		return nil, err
	}
	if err := m.checkNICs(container, cfg); err != nil {
		unlock()
		return nil, invalid(err)
	}
	if err := m.checkProxies(container, cfg); err != nil {
		unlock()
		return nil, invalid(err)
	}
	return unlock, nil
}

func (m *Manager) checkNICs(container string, cfg *config.Container) error {
	var errs []error
	taken := m.staticAddresses(container)
	mine := map[string]string{}
	for i, nic := range cfg.Networks {
		key := fmt.Sprintf("network.%d", i)
		switch nic.Kind() {
		case config.NICMacvlan:
			if _, err := netlink.LinkByName(nic.Parent); err != nil {
				errs = append(errs, fmt.Errorf("%s.parent: host interface %q does not exist (see ip link)", key, nic.Parent))
			}
			continue
		case config.NICNone:
			continue
		}
		r, err := m.readNetwork(nic.NetworkName())
		if err != nil {
			errs = append(errs, fmt.Errorf("%s.network: %w", key, err))
			continue
		}
		for _, a := range []struct{ field, value string }{{"ipv4", nic.IPv4}, {"ipv6", nic.IPv6}} {
			if a.value == "" {
				continue
			}
			addr, _ := netip.ParseAddr(a.value) // config checked the syntax
			subnet := r.subnet4()
			if a.field == "ipv6" {
				subnet = r.subnet6()
			}
			if problem := addressProblem(addr, subnet); problem != "" {
				errs = append(errs, fmt.Errorf("%s.%s: %s %s of network %q; %s", key, a.field, addr, problem, r.Name, usableRange(subnet)))
				continue
			}
			id := r.Name + " " + addr.String()
			if other, ok := taken[id]; ok {
				errs = append(errs, fmt.Errorf("%s.%s: %s is already the address of container %s on network %q; choose another, or leave it empty for DHCP", key, a.field, addr, other, r.Name))
			} else if other, ok := mine[id]; ok {
				errs = append(errs, fmt.Errorf("%s.%s: %s is also the address of this container's %s on network %q", key, a.field, addr, other, r.Name))
			}
			mine[id] = key
		}
	}
	return errors.Join(errs...)
}

// staticAddresses maps "NETWORK ADDRESS" to the container (not except)
// whose configuration gives a NIC that static address.
func (m *Manager) staticAddresses(except string) map[string]string {
	out := map[string]string{}
	names, _ := m.store.Names()
	for _, c := range names {
		if c == except {
			continue
		}
		cfg, err := config.Load(m.store.ConfigPath(c))
		if err != nil {
			continue
		}
		for _, nic := range cfg.Networks {
			for _, v := range []string{nic.IPv4, nic.IPv6} {
				if a, err := netip.ParseAddr(v); err == nil && nic.Kind() == config.NICBridged {
					out[nic.NetworkName()+" "+a.String()] = c
				}
			}
		}
	}
	return out
}

// addressProblem says why addr cannot be a container's in subnet, or "".
func addressProblem(addr netip.Addr, subnet netip.Prefix) string {
	switch {
	case !subnet.IsValid():
		return "is given, but there is no such subnet in"
	case !subnet.Contains(addr):
		return fmt.Sprintf("is outside the subnet %s", subnet)
	case addr == subnet.Addr():
		return fmt.Sprintf("is the network address of %s", subnet)
	case addr == network.Gateway(subnet).Addr():
		return "is the gateway (the host's address on the bridge)"
	case addr.Is4() && addr == lastAddr(subnet):
		return fmt.Sprintf("is the broadcast address of %s", subnet)
	}
	return ""
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func usableRange(subnet netip.Prefix) string {
	if !subnet.IsValid() {
		return "create the network with one, or leave the address empty"
	}
	first := network.Gateway(subnet).Addr().Next()
	if subnet.Addr().Is4() {
		return fmt.Sprintf("use an address from %s to %s", first, lastAddr(subnet).Prev())
	}
	return fmt.Sprintf("use an address in %s other than %s", subnet, network.Gateway(subnet).Addr())
}
