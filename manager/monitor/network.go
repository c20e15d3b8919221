package monitor

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"lodge/config"
	"lodge/network"
)

// The container's NICs, as start planned them (manager/attach.go): made in
// the child's network namespace before init runs, at every boot (a guest
// reboot brings a new namespace), and released when the container stops
// for good.

// attachNICs makes the planned NICs in the network namespace of the
// child (host pid), with the bandwidth limits of cfg (read at each boot: a
// running container's limits may have changed since its start). On
// failure it removes those it made.
func (m *Monitor) attachNICs(pid int, cfg *config.Container) error {
	plan, err := network.ReadAttachments(m.store.NICsPath(m.name))
	if err != nil || len(plan) == 0 {
		return err
	}
	ns, err := os.Open("/proc/" + strconv.Itoa(pid) + "/ns/net")
	if err != nil {
		return fmt.Errorf("the container's network namespace: %w", err)
	}
	defer ns.Close()
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()
	for i, a := range plan {
		a.Limits = network.LimitsOf(cfg.Limits.Network)
		if err := network.Attach(h, int(ns.Fd()), a); err != nil {
			for _, done := range plan[:i] {
				network.Detach(h, done)
			}
			return err
		}
	}
	return nil
}

// attachNICsForRestore makes the planned NICs for a restore by CRIU, which
// makes the container's network namespace itself (network.AttachForRestore),
// and returns CRIU's --external entries for them. On failure it removes
// those it made.
func (m *Monitor) attachNICsForRestore(cfg *config.Container) ([]string, error) {
	plan, err := network.ReadAttachments(m.store.NICsPath(m.name))
	if err != nil || len(plan) == 0 {
		return nil, err
	}
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()
	var externals []string
	for i, a := range plan {
		a.Limits = network.LimitsOf(cfg.Limits.Network)
		if err := network.AttachForRestore(h, a); err != nil {
			for _, done := range plan[:i] {
				network.Detach(h, done)
			}
			return nil, err
		}
		externals = append(externals, a.CRIUExternal())
	}
	return externals, nil
}

// announceNICs sends a gratuitous ARP from each of the restored
// container's NICs (network.Announce), so that the bridges, here and on a
// host the container came from, send its frames to where it now is; once
// at once and once more a moment later, in case the first is lost.
// Failures are only logged: the container runs, and is found again when it
// sends.
func (m *Monitor) announceNICs(pid int) {
	plan, err := network.ReadAttachments(m.store.NICsPath(m.name))
	if err != nil {
		return
	}
	network.AnnounceFrom(pid, plan, func(nic string, err error) {
		m.log.Warn("announce the NICs", "nic", nic, "err", err)
	})
}

// detachNICs removes what attachNICs made (the veths go with the
// namespace; their rules and ifbs do not), and with release also the
// NICs' addresses on their networks and the plan: the container has
// stopped for good.
func (m *Monitor) detachNICs(release bool) {
	path := m.store.NICsPath(m.name)
	plan, err := network.ReadAttachments(path)
	if err != nil || len(plan) == 0 {
		if err != nil {
			m.log.Warn("network attachments", "err", err)
		}
		return
	}
	h, err := netlink.NewHandle()
	if err != nil {
		m.log.Warn("netlink", "err", err)
		return
	}
	defer h.Close()
	var errs []error
	for _, a := range plan {
		errs = append(errs, network.Detach(h, a))
		if release {
			errs = append(errs, network.Release(a))
		}
	}
	if release && errors.Join(errs...) == nil {
		errs = append(errs, network.WriteAttachments(path, nil))
	}
	if err := errors.Join(errs...); err != nil {
		m.log.Warn("remove the container's NICs", "err", err)
	}
}
