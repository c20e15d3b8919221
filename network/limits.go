package network

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"lodge/config"
)

// Limits are a NIC's bandwidth limits in bits per second, as the container
// sees them (like Incus's limits.ingress and limits.egress); 0 is none.
//
//   - Ingress (what the container receives) is a tbf qdisc at the root of
//     the host veth: the host end's egress is the container's ingress.
//   - Egress (what the container sends) arrives at the host veth's ingress,
//     where nothing can queue. An ingress qdisc there has a u32 filter that
//     matches every frame and a mirred action that redirects it to an ifb
//     device (IfbName), whose root tbf shapes it before the frame continues
//     into the bridge. A police action would be simpler, but this kernel
//     (like others built without CONFIG_NET_ACT_POLICE) has none, and police
//     drops instead of queueing, which TCP takes worse. Shaping inside the
//     container would do, but container root could remove it.
//
// Everything sits on the host's side, so a running container's limits
// change with another SetLimits: qdiscs are replaced, not re-created.
type Limits struct {
	Ingress uint64
	Egress  uint64
}

// LimitsOf converts a container's configured network limits.
func LimitsOf(l config.NetworkLimits) Limits {
	return Limits{Ingress: uint64(l.Ingress), Egress: uint64(l.Egress)}
}

// SetLimits applies l to the NIC of container named nic, through h (the
// host's namespace), replacing earlier limits; zero fields remove them.
func SetLimits(h *netlink.Handle, container, nic string, l Limits) error {
	veth, err := h.LinkByName(HostVethName(container, nic))
	if err != nil {
		return fmt.Errorf("limits of %s's %s: %w", container, nic, err)
	}
	if err := setTbf(h, veth, l.Ingress); err != nil {
		return fmt.Errorf("ingress limit of %s's %s: %w", container, nic, err)
	}
	if err := setEgress(h, veth, container, nic, l.Egress); err != nil {
		return fmt.Errorf("egress limit of %s's %s: %w", container, nic, err)
	}
	return nil
}

// setTbf replaces link's root qdisc with a tbf of rate bits/s, or, for 0,
// deletes it (the kernel's default qdisc comes back).
func setTbf(h *netlink.Handle, link netlink.Link, bits uint64) error {
	attrs := netlink.QdiscAttrs{LinkIndex: link.Attrs().Index, Handle: netlink.MakeHandle(1, 0), Parent: netlink.HANDLE_ROOT}
	if bits == 0 {
		return ignoreMissing(h.QdiscDel(&netlink.Tbf{QdiscAttrs: attrs}))
	}
	rate := bits / 8              // bytes per second
	burst := max(rate/50, 64<<10) // 20 ms of traffic, at least 64 KiB (a GSO frame)
	limit := burst + rate/20      // and 50 ms of queue
	tbf := &netlink.Tbf{QdiscAttrs: attrs, Rate: rate, Limit: uint32(min(limit, 1<<31)),
		Buffer: netlink.Xmittime(rate, uint32(burst))}
	if err := h.QdiscReplace(tbf); err != nil {
		return fmt.Errorf("tbf on %s: %w", link.Attrs().Name, err)
	}
	return nil
}

// setEgress shapes what the container sends through an ifb, or removes the
// ifb and the veth's ingress qdisc (and with it the redirect) for 0.
func setEgress(h *netlink.Handle, veth netlink.Link, container, nic string, bits uint64) error {
	ingress := &netlink.Ingress{QdiscAttrs: netlink.QdiscAttrs{
		LinkIndex: veth.Attrs().Index, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_INGRESS}}
	if bits == 0 {
		if err := ignoreMissing(h.QdiscDel(ingress)); err != nil {
			return err
		}
		return removeIfb(h, container, nic)
	}
	ifb, err := ensureIfb(h, container, nic)
	if err != nil {
		return err
	}
	if err := setTbf(h, ifb, bits); err != nil {
		return err
	}
	// Add, not replace: replacing an ingress qdisc fails with EINVAL.
	if err := h.QdiscAdd(ingress); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("ingress qdisc on %s: %w", veth.Attrs().Name, err)
	}
	redirect := &netlink.U32{
		FilterAttrs: netlink.FilterAttrs{LinkIndex: veth.Attrs().Index, Parent: ingress.Handle, Priority: 1, Protocol: unix.ETH_P_ALL},
		Sel:         &netlink.TcU32Sel{Flags: netlink.TC_U32_TERMINAL, Nkeys: 1, Keys: []netlink.TcU32Key{{}}}, // match all
		Actions:     []netlink.Action{netlink.NewMirredAction(ifb.Attrs().Index)},
	}
	if err := h.FilterReplace(redirect); err != nil {
		return fmt.Errorf("redirect %s to %s: %w", veth.Attrs().Name, ifb.Attrs().Name, err)
	}
	return nil
}

func ensureIfb(h *netlink.Handle, container, nic string) (netlink.Link, error) {
	name := IfbName(container, nic)
	if link, err := h.LinkByName(name); err == nil {
		return link, nil
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name = name
	ifb := &netlink.Ifb{LinkAttrs: attrs}
	if err := h.LinkAdd(ifb); err != nil {
		return nil, fmt.Errorf("create ifb %s: %w", name, err)
	}
	if err := h.LinkSetAlias(ifb, NICAlias(container, nic)); err != nil {
		h.LinkDel(ifb)
		return nil, err
	}
	if err := h.LinkSetUp(ifb); err != nil {
		h.LinkDel(ifb)
		return nil, err
	}
	return h.LinkByName(name)
}

// removeIfb deletes the NIC's ifb, if any. Unlike the veth pair it does not
// go away with the container's namespace: RemoveNIC calls this, and a sweep
// finds the ifbs of containers that died without lodge (OwnedLinks).
func removeIfb(h *netlink.Handle, container, nic string) error {
	link, err := h.LinkByName(IfbName(container, nic))
	var notFound netlink.LinkNotFoundError
	if errors.As(err, &notFound) {
		return nil
	}
	if err == nil {
		err = h.LinkDel(link)
	}
	return ignoreMissing(err)
}

// ignoreMissing turns "there was nothing to delete" into success: deleting
// the root qdisc of a link that has only its default one fails with
// EINVAL, a missing ingress qdisc with ENOENT, a vanished link with ENODEV.
func ignoreMissing(err error) error {
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENODEV) {
		return nil
	}
	return err
}
