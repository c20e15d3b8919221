package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// A container's NICs are an array of tables in config.toml:
//
//	[[network]]
//	name = "eth0"
//	network = "default"
//	hwaddr = "0a:1b:2c:3d:4e:5f"
//	ipv4 = "10.12.34.5"
//
// and network.N.KEY on the command line (`lodge config set c
// network.0.ipv4=10.12.34.5`), N counting from 0 in the file's order. An
// array, not a table per interface name ([network.eth0]), because the issue
// asks for [[network]] entries with a name that defaults to eth0, eth1...;
// the index keys are the command-line spelling of the same array. Setting a
// key of entry N == the number of entries adds one; `network.N=` (no
// field, empty value) removes entry N. lodge fills in name and hwaddr when
// it saves a configuration that lacks them (manager), so that removing an
// entry never renames or re-addresses the others.

// NIC types.
const (
	NICBridged = "bridged" // a veth pair, its host end on a lodge network's bridge (the default)
	NICMacvlan = "macvlan" // a macvlan on a host interface (parent)
	NICNone    = "none"    // the entry makes no interface (kept, but disabled)
)

// DefaultNetwork is the managed network a bridged NIC joins unless it names
// another; lodge creates it on first use.
const DefaultNetwork = "default"

// NIC is one network interface of a container.
type NIC struct {
	Name    string `toml:"name,omitempty"`    // the interface's name inside; default eth<index>
	Type    string `toml:"type,omitempty"`    // NICBridged (""), NICMacvlan or NICNone
	Network string `toml:"network,omitempty"` // bridged: the managed network; "" is DefaultNetwork
	Parent  string `toml:"parent,omitempty"`  // macvlan: the host interface
	HWAddr  string `toml:"hwaddr,omitempty"`  // MAC address; generated and saved if absent
	IPv4    string `toml:"ipv4,omitempty"`    // static address; "" for DHCP
	IPv6    string `toml:"ipv6,omitempty"`    // static address; "" for router advertisements / DHCPv6
	MTU     int    `toml:"mtu,omitzero"`      // 0 for the network's
}

// Kind is the NIC's type with the default filled in.
func (n NIC) Kind() string {
	if n.Type == "" {
		return NICBridged
	}
	return n.Type
}

// NetworkName is the managed network a bridged NIC joins.
func (n NIC) NetworkName() string {
	if n.Network == "" && n.Kind() == NICBridged {
		return DefaultNetwork
	}
	return n.Network
}

// InterfaceName is the NIC's name inside the container: name, or eth<i>
// for the entry at index i.
func (n NIC) InterfaceName(i int) string {
	if n.Name != "" {
		return n.Name
	}
	return "eth" + strconv.Itoa(i)
}

// nicFields are the keys of one [[network]] entry, with their docs (the
// README's key table lists them as network.N.KEY).
var nicFields = []struct {
	name, doc, example string
	field              func(*NIC) any
}{
	{"hwaddr", "MAC address of NIC N, e.g. 0a:12:34:56:78:9a (unicast). Absent: lodge generates a stable, locally administered one from the container's and the NIC's names and saves it when the configuration is saved, so the address (and a DHCP lease) stays.", "0a:12:34:56:78:9a", func(n *NIC) any { return &n.HWAddr }},
	{"ipv4", "Static IPv4 address of NIC N, inside its network's subnet, neither the network's, the gateway's (.1) nor the broadcast address, and used by no other container on the network (checked at `config set` and `create`). Empty: an address by DHCP.", "10.12.34.5", func(n *NIC) any { return &n.IPv4 }},
	{"ipv6", "Static IPv6 address of NIC N, inside its network's IPv6 subnet, checked like ipv4. Empty: an address from router advertisements.", "fd12:3456:789a::5", func(n *NIC) any { return &n.IPv6 }},
	{"mtu", "MTU of NIC N, 68-65535; 0 takes the network's (1500).", "1400", func(n *NIC) any { return &n.MTU }},
	{"name", "Interface name of NIC N inside the container, unique among its NICs; default eth0, eth1... by position, saved when the configuration is saved.", "eth1", func(n *NIC) any { return &n.Name }},
	{"network", "Managed network (`lodge network create`) that NIC N joins; empty means `default`, created on first use with a subnet free on the host.", "default", func(n *NIC) any { return &n.Network }},
	{"parent", "For type macvlan: the host interface the macvlan sits on.", "eth1", func(n *NIC) any { return &n.Parent }},
	{"type", "Kind of NIC N: bridged (a veth pair on the managed network's bridge), macvlan (on the host interface parent) or none (the entry makes no interface). NICs are attached when the container starts.", NICNone, func(n *NIC) any { return &n.Type }},
}

// nicKeys are the registry's entries for the network.N.* keys: documented
// like the others, set through assignNIC.
func nicKeys() []Key {
	var keys []Key
	for _, f := range nicFields {
		keys = append(keys, Key{Name: "network.N." + f.name, Doc: f.doc, Example: f.example, nic: true,
			get: func(*Container) string { return "" }})
	}
	return keys
}

// parseNICKey splits "network.1.ipv4" into 1 and "ipv4" ("" for "network.1").
func parseNICKey(name string) (index int, field string, err error) {
	rest := strings.TrimPrefix(name, "network.")
	num, field, _ := strings.Cut(rest, ".")
	index, convErr := strconv.Atoi(num)
	if convErr != nil || index < 0 || strconv.Itoa(index) != num {
		return 0, "", fmt.Errorf("unknown key %q: NIC keys are network.N.KEY with N = 0, 1, ... (e.g. network.0.ipv4)", name)
	}
	if field == "" {
		return index, "", nil
	}
	for _, f := range nicFields {
		if f.name == field {
			return index, field, nil
		}
	}
	var names []string
	for _, f := range nicFields {
		names = append(names, f.name)
	}
	return 0, "", fmt.Errorf("unknown key %q%s; a NIC's keys are %s", name,
		didYouMean(field, names), strings.Join(names, ", "))
}

// assignNIC sets one network.N.* key (see the comment at the top).
func (c *Container) assignNIC(name, value string) error {
	index, field, err := parseNICKey(name)
	if err != nil {
		return err
	}
	value = strings.TrimSpace(value)
	switch {
	case field == "" && value != "":
		return &keyError{Key: name, Err: fmt.Errorf("set one of the NIC's keys (e.g. %s.network=default), or give an empty value to remove NIC %d", name, index)}
	case field == "" && index >= len(c.Networks):
		return &keyError{Key: name, Err: fmt.Errorf("there is no NIC %d to remove (the container has %d)", index, len(c.Networks))}
	case field == "":
		c.Networks = append(c.Networks[:index:index], c.Networks[index+1:]...)
		return nil
	case index > len(c.Networks):
		return &keyError{Key: name, Err: fmt.Errorf("the container has %d NICs; add them in order: the next is network.%d", len(c.Networks), len(c.Networks))}
	case index == len(c.Networks):
		c.Networks = append(c.Networks, NIC{})
	}
	nic := &c.Networks[index]
	for _, f := range nicFields {
		if f.name != field {
			continue
		}
		switch dst := f.field(nic).(type) {
		case *string:
			*dst = value
		case *int:
			if value == "" {
				*dst = 0
				return nil
			}
			n, err := strconv.Atoi(value)
			if err != nil {
				return &keyError{Key: name, Err: fmt.Errorf("%q is not a whole number; use e.g. 1400", value)}
			}
			*dst = n
		}
	}
	return nil
}

// getNIC returns a network.N.* key's value.
func (c *Container) getNIC(name string) (string, error) {
	index, field, err := parseNICKey(name)
	if err != nil {
		return "", err
	}
	if index >= len(c.Networks) || field == "" {
		return "", nil
	}
	for _, f := range nicFields {
		if f.name == field {
			switch v := f.field(&c.Networks[index]).(type) {
			case *string:
				return *v, nil
			case *int:
				return strconv.Itoa(*v), nil
			}
		}
	}
	return "", nil
}

// ValidateNetworkName checks a managed network's name: the rules of
// container names (it becomes part of interface aliases and nftables table
// names), at most 15 characters.
func ValidateNetworkName(name string) error {
	problem := nameProblem(name)
	if problem == "" && len(name) > 15 {
		problem = fmt.Sprintf("is %d characters long", len(name))
	}
	if problem != "" {
		return fmt.Errorf("invalid network name %q: %s; use letters, digits and dashes, 1-15 characters, starting with a letter", name, problem)
	}
	return nil
}

// checkNICs is the pure validation of the [[network]] entries: syntax and
// duplicates within the container. Whether a network exists and an address
// fits its subnet is the manager's check (it needs the network store).
func checkNICs(c *Container) error {
	var errs []error
	names, macs := map[string]int{}, map[string]int{}
	for i, n := range c.Networks {
		key := func(f string) string { return fmt.Sprintf("network.%d.%s", i, f) }
		fail := func(f, format string, args ...any) { errs = append(errs, keyErrorf(key(f), format, args...)) }
		ifname := n.InterfaceName(i)
		if p := ifnameProblem(ifname); p != "" {
			fail("name", "%q %s", ifname, p)
		} else if j, dup := names[ifname]; dup {
			fail("name", "%q is also the name of NIC %d; give each NIC its own name", ifname, j)
		} else {
			names[ifname] = i
		}
		switch n.Kind() {
		case NICBridged:
			if n.Network != "" {
				if err := ValidateNetworkName(n.Network); err != nil {
					fail("network", "%v", err)
				}
			}
			if n.Parent != "" {
				fail("parent", "is for type macvlan; a bridged NIC joins a network (network.%d.network)", i)
			}
		case NICMacvlan:
			if n.Parent == "" {
				fail("parent", "a macvlan NIC needs the host interface it sits on, e.g. network.%d.parent=eth1", i)
			} else if p := ifnameProblem(n.Parent); p != "" {
				fail("parent", "%q %s", n.Parent, p)
			}
			if n.Network != "" {
				fail("network", "a macvlan NIC joins no managed network; remove network, or use type bridged")
			}
		case NICNone:
			if n.Network != "" || n.Parent != "" || n.IPv4 != "" || n.IPv6 != "" {
				fail("type", "none makes no interface; remove its network, parent and addresses, or choose bridged or macvlan")
			}
		default:
			fail("type", "%q must be %s, %s or %s", n.Type, NICBridged, NICMacvlan, NICNone)
		}
		if n.HWAddr != "" {
			if mac, err := ParseMAC(n.HWAddr); err != nil {
				fail("hwaddr", "%v", err)
			} else if j, dup := macs[mac.String()]; dup {
				fail("hwaddr", "%s is also the address of NIC %d; give each NIC its own (or leave hwaddr empty to have one generated)", mac, j)
			} else {
				macs[mac.String()] = i
			}
		}
		if n.IPv4 != "" {
			if a, err := netip.ParseAddr(n.IPv4); err != nil || !a.Is4() {
				fail("ipv4", "%q is not an IPv4 address; write e.g. 10.12.34.5 (no prefix length: the network's subnet gives it), or leave it empty for DHCP", n.IPv4)
			}
		}
		if n.IPv6 != "" {
			if a, err := netip.ParseAddr(n.IPv6); err != nil || !a.Is6() || a.Is4In6() || a.Zone() != "" {
				fail("ipv6", "%q is not an IPv6 address; write e.g. fd12:3456:789a::5 (no prefix length), or leave it empty", n.IPv6)
			}
		}
		if n.MTU != 0 && (n.MTU < 68 || n.MTU > 65535) {
			fail("mtu", "%d is outside 68-65535; use e.g. 1500, or 0 for the network's", n.MTU)
		}
	}
	return errors.Join(errs...)
}

// ParseMAC parses a NIC's hwaddr: six bytes, unicast, not all zero.
func ParseMAC(s string) (net.HardwareAddr, error) {
	mac, err := net.ParseMAC(s)
	switch {
	case err != nil || len(mac) != 6:
		return nil, fmt.Errorf("%q is not a MAC address; write six bytes like 0a:12:34:56:78:9a", s)
	case mac[0]&1 != 0:
		return nil, fmt.Errorf("%s is a multicast address; the first byte must be even (e.g. 0a:...)", mac)
	case mac.String() == "00:00:00:00:00:00":
		return nil, fmt.Errorf("%s is not a usable address; leave hwaddr empty to have one generated", mac)
	}
	return mac, nil
}

// ifnameProblem says what makes s unusable as an interface name, or "".
func ifnameProblem(s string) string {
	switch {
	case s == "" || len(s) > 15:
		return "must be 1-15 characters"
	case s == "." || s == ".." || s == "lo":
		return "is reserved"
	case strings.ContainsAny(s, "/:% \t\n\x00"):
		return "must not contain '/', ':', '%' or blanks"
	}
	return ""
}
