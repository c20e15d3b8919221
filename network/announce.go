package network

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Announce sends a gratuitous ARP for the NIC's IPv4 address from inside
// the container's network namespace nsFD, as a hypervisor does after moving
// a virtual machine. Bridges learn a MAC's port from the frames it sends:
// after a restore, on this host or another one joined to the same segment,
// the bridges still send the container's frames to where it was (a deleted
// port, or the link to the other host) until it sends something itself. A
// restored TCP peer that only receives would wait for their entries to age
// out (300 s). The frames the kernel sends when CRIU brings the link up
// (IPv6 duplicate address detection, MLD) cannot teach them: the restore's
// network lock drops them (migrate/netlock.go). A packet socket is not
// subject to that lock, so the announcement goes out whenever it is sent.
// A NIC without an IPv4 address is left alone: it is found again once it
// sends.
func Announce(nsFD int, a Attachment) error {
	if !a.Address4.IsValid() {
		return nil
	}
	mac := a.NIC.HWAddr()
	frame := garp(mac, a.Address4.AsSlice())
	return inNetNS(nsFD, func() error {
		ifi, err := net.InterfaceByName(a.NIC.Name)
		if err != nil {
			return fmt.Errorf("announce %s: %w", a.NIC.Name, err)
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ARP)))
		if err != nil {
			return fmt.Errorf("announce %s: %w", a.NIC.Name, err)
		}
		defer unix.Close(fd)
		to := &unix.SockaddrLinklayer{Ifindex: ifi.Index, Protocol: htons(unix.ETH_P_ARP), Halen: 6}
		copy(to.Addr[:], broadcastMAC)
		if err := unix.Sendto(fd, frame, 0, to); err != nil {
			return fmt.Errorf("announce %s: %w", a.NIC.Name, err)
		}
		return nil
	})
}

var broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// garp is a gratuitous ARP request: an Ethernet broadcast from mac asking
// for ip on behalf of ip itself (RFC 5227's announcement).
func garp(mac net.HardwareAddr, ip []byte) []byte {
	f := make([]byte, 0, 42)
	f = append(f, broadcastMAC...)
	f = append(f, mac...)
	f = binary.BigEndian.AppendUint16(f, unix.ETH_P_ARP)
	f = binary.BigEndian.AppendUint16(f, 1)      // hardware: Ethernet
	f = binary.BigEndian.AppendUint16(f, 0x0800) // protocol: IPv4
	f = append(f, 6, 4)                          // address lengths
	f = binary.BigEndian.AppendUint16(f, 1)      // request
	f = append(f, mac...)
	f = append(f, ip...)
	f = append(f, 0, 0, 0, 0, 0, 0) // target MAC: unknown
	return append(f, ip...)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// AnnounceFrom announces every NIC of plan (Announce) from the network
// namespace of process pid: at once, and once more a moment later in case
// the first is lost (in the background: it returns after the first).
// Failures go to warn; the container is found again when it sends.
func AnnounceFrom(pid int, plan []Attachment, warn func(nic string, err error)) {
	if len(plan) == 0 {
		return
	}
	ns, err := os.Open("/proc/" + strconv.Itoa(pid) + "/ns/net")
	if err != nil {
		warn("", err)
		return
	}
	announce := func() {
		for _, a := range plan {
			if err := Announce(int(ns.Fd()), a); err != nil {
				warn(a.NIC.Name, err)
			}
		}
	}
	announce()
	go func() {
		defer ns.Close()
		time.Sleep(200 * time.Millisecond)
		announce()
	}()
}
