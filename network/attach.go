package network

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"

	"lodge/internal/atomicfile"
	"lodge/internal/rawfile"
	"lodge/internal/revert"
)

// Attachment is one NIC of a running container as lodge planned it at
// start: what the container's monitor creates at each boot (a guest reboot
// gets a new network namespace, so the NIC is made again) and what is
// removed when the container stops for good. It is written to the
// container's runtime directory, so that whoever finds the container
// stopped (its monitor, or the next lodge command if the monitor was
// killed) removes exactly what was made.
type Attachment struct {
	Kind     string     `json:"kind"`              // "bridged" or "macvlan"
	NIC      NIC        `json:"nic"`               // the interface; NIC.Container is the container's kernel identity
	Parent   string     `json:"parent,omitempty"`  // macvlan: the host interface
	Network  string     `json:"network,omitempty"` // bridged: the managed network's name
	NetID    string     `json:"net_id,omitempty"`  // its kernel identity (tables: FirewallTable, NAT)
	Dir      string     `json:"dir,omitempty"`     // its directory (the DHCP host entries)
	HostKey  string     `json:"host_key,omitempty"`
	Address4 netip.Addr `json:"address4,omitzero"` // the container's IPv4, static or handed out by DHCP
	Address6 netip.Addr `json:"address6,omitzero"` // its IPv6 (static, or SLAAC's EUI-64 from the MAC)
	Limits   Limits     `json:"-"`                 // from the configuration, at each boot (they change live)
}

// Bridged kinds of Attachment.
const (
	KindBridged = "bridged"
	KindMacvlan = "macvlan"
)

// Attach makes the NIC in the container's network namespace nsFD: for a
// bridged NIC the veth pair, its anti-spoofing rules and its bandwidth
// limits; for a macvlan the macvlan. On failure nothing is left behind.
func Attach(host *netlink.Handle, nsFD int, a Attachment) error {
	if a.Kind == KindMacvlan {
		return addMacvlan(host, nsFD, a.NIC, a.Parent)
	}
	return a.attachBridged(host, func() error { return AddNIC(host, nsFD, a.NIC) })
}

// AttachForRestore makes what Attach makes, for a restore by CRIU, which
// makes the container's network namespace itself: a bridged NIC's veth
// pair has its container end in the host's namespace (AddRestoreNIC), and
// a macvlan is left to CRIU. CRIUExternal tells CRIU what to do with each.
// On failure nothing is left behind.
func AttachForRestore(host *netlink.Handle, a Attachment) error {
	if a.Kind == KindMacvlan {
		return nil
	}
	return a.attachBridged(host, func() error { return AddRestoreNIC(host, a.NIC) })
}

// CRIUExternal is CRIU's --external entry that makes the NIC at a restore:
// netdev[NAME]:RESTORENAME moves the container end AttachForRestore made
// into the restored namespace, under its name and with its MAC and
// interface index from the images; macvlan[NAME]:PARENT creates a macvlan
// on the host interface PARENT.
func (a Attachment) CRIUExternal() string {
	if a.Kind == KindMacvlan {
		return fmt.Sprintf("macvlan[%s]:%s", a.NIC.Name, a.Parent)
	}
	return fmt.Sprintf("netdev[%s]:%s", a.NIC.Name, RestoreVethName(a.NIC.Container, a.NIC.Name))
}

// attachBridged makes the veth pair with addVeth, then the port's
// anti-spoofing rules and its bandwidth limits.
func (a Attachment) attachBridged(host *netlink.Handle, addVeth func() error) error {
	r := revert.New()
	defer r.Fail()
	if err := addVeth(); err != nil {
		return err
	}
	r.Add(func() { RemoveNIC(host, a.NIC.Container, a.NIC.Name) })
	if err := a.firewall(func(f *Firewall) error { return f.SetPort(a.port()) }); err != nil {
		return fmt.Errorf("nic %s of %s: %w", a.NIC.Name, a.NIC.Container, err)
	}
	r.Add(func() { a.firewall(func(f *Firewall) error { return f.RemovePort(a.NIC.HostName()) }) })
	if a.Limits != (Limits{}) {
		if err := SetLimits(host, a.NIC.Container, a.NIC.Name, a.Limits); err != nil {
			return err
		}
	}
	r.Success()
	return nil
}

// Detach removes what Attach made: the port's rules, the ifb and the veth
// (usually gone already: the pair dies with the container's namespace).
// Missing pieces are no error.
func Detach(host *netlink.Handle, a Attachment) error {
	if a.Kind == KindMacvlan {
		return nil // it lived in the container's namespace and died with it
	}
	return errors.Join(
		a.firewall(func(f *Firewall) error { return f.RemovePort(a.NIC.HostName()) }),
		RemoveNIC(host, a.NIC.Container, a.NIC.Name),
	)
}

// Release gives up what the NIC held on its network between boots: its
// DHCP host entry (fixed lease and DNS names), its lease, and the
// container's port forwards in the network's NAT table. It follows Detach
// when the container stops for good.
func Release(a Attachment) error {
	if a.Kind != KindBridged || a.HostKey == "" {
		return nil
	}
	err := errors.Join(
		RemoveDHCPHost(a.Dir, a.HostKey),
		a.nftables(func(conn *nftables.Conn) error { return NewNAT(conn, a.NetID).RemoveForwards(a.NIC.Container) }),
	)
	if a.Address4.IsValid() {
		err = errors.Join(err, ReleaseLease(BridgeName(a.NetID), a.Address4, a.NIC.HWAddr()))
	}
	return err
}

func (a Attachment) port() Port {
	return Port{HostIf: a.NIC.HostName(), MAC: a.NIC.HWAddr(), IPv4: a.Address4, IPv6: a.Address6}
}

func (a Attachment) firewall(f func(*Firewall) error) error {
	return a.nftables(func(conn *nftables.Conn) error { return f(NewFirewall(conn, a.NetID)) })
}

func (a Attachment) nftables(f func(*nftables.Conn) error) error {
	conn, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	defer conn.CloseLasting()
	return f(conn)
}

// addMacvlan creates a macvlan (bridge mode) on the host interface parent
// directly in the container's namespace, under its final name and MAC, and
// brings it up. Addresses are the outside network's business (its DHCP).
func addMacvlan(host *netlink.Handle, nsFD int, n NIC, parent string) error {
	p, err := host.LinkByName(parent)
	if err != nil {
		return fmt.Errorf("nic %s of %s: macvlan parent %s: %w", n.Name, n.Container, parent, err)
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.MTU, attrs.ParentIndex = n.Name, n.MTU, p.Attrs().Index
	attrs.HardwareAddr, attrs.Namespace = n.HWAddr(), netlink.NsFd(nsFD)
	if err := host.LinkAdd(&netlink.Macvlan{LinkAttrs: attrs, Mode: netlink.MACVLAN_MODE_BRIDGE}); err != nil {
		return fmt.Errorf("nic %s of %s: create macvlan on %s: %w", n.Name, n.Container, parent, err)
	}
	if err := configurePeer(nsFD, n); err != nil {
		return fmt.Errorf("nic %s of %s: in the container: %w", n.Name, n.Container, err)
	}
	return nil
}

// EUI64 is the address SLAAC gives an interface with MAC mac in the /64
// subnet: the MAC with ff:fe in its middle and the universal/local bit
// flipped, as the kernel's default (addr_gen_mode 0) makes it.
func EUI64(subnet netip.Prefix, mac net.HardwareAddr) netip.Addr {
	if !subnet.IsValid() || !subnet.Addr().Is6() || len(mac) != 6 {
		return netip.Addr{}
	}
	b := subnet.Masked().Addr().As16()
	b[8], b[9], b[10], b[11] = mac[0]^0x02, mac[1], mac[2], 0xff
	b[12], b[13], b[14], b[15] = 0xfe, mac[3], mac[4], mac[5]
	return netip.AddrFrom16(b)
}

// WriteAttachments records a container's attachments at path (its runtime
// directory), atomically; none removes the file.
func WriteAttachments(path string, as []Attachment) error {
	if len(as) == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	data, err := json.MarshalIndent(as, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteRuntime(path, append(data, '\n'), 0o600)
}

// ReadAttachments reads what WriteAttachments recorded; a missing file is
// no attachment.
func ReadAttachments(path string) ([]Attachment, error) {
	data, err := rawfile.Read(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var as []Attachment
	if err := json.Unmarshal(data, &as); err != nil {
		return nil, fmt.Errorf("%s is damaged: %w", path, err)
	}
	return as, nil
}
