package network

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// DHCPHost is one container NIC's fixed lease and DNS names. Addresses are chosen by lodge
// (the lead's allocator); dnsmasq only hands them out ("static" dhcp-range mode: unknown MACs get nothing).
type DHCPHost struct {
	Key  string // file name: "CONTAINER.NIC" (e.g. "c1.eth0")
	MAC  net.HardwareAddr
	IPv4 netip.Addr
	IPv6 netip.Addr // zero: none
	Name string     // DNS name (the container's name), resolvable as NAME and NAME.DOMAIN
}

// The two files of a host: dhcp-hosts/KEY holds "MAC,IPv4,NAME" (dnsmasq's
// dhcp-host syntax), hosts/KEY "IPv4 NAME" and, with IPv6, "IPv6 NAME"
// (hosts syntax; expand-hosts adds NAME.DOMAIN). DHCPHosts reads both back.

func validKey(key string) error {
	if key == "" || strings.ContainsAny(key, "/\x00") || key[0] == '.' || strings.HasSuffix(key, "~") || key[0] == '#' {
		return fmt.Errorf("dhcp host key %q: use CONTAINER.NIC (no /, not starting with . or #)", key)
	}
	return nil
}

// WriteDHCPHost atomically writes dir/dhcp-hosts/KEY (dhcp-hostsdir) and
// dir/hosts/KEY (hostsdir); dnsmasq reads new and changed files by inotify,
// without a restart. When the entry replaces a different one, dnsmasq is
// sent SIGHUP, since it only adds dhcp-hosts by inotify (see signalDnsmasq).
func WriteDHCPHost(dir string, h DHCPHost) error {
	if err := validKey(h.Key); err != nil {
		return err
	}
	if len(h.MAC) != 6 || !h.IPv4.Is4() || h.Name == "" || strings.ContainsAny(h.Name, " \t\n,#") ||
		h.IPv6.IsValid() && (!h.IPv6.Is6() || h.IPv6.Is4In6()) {
		return fmt.Errorf("dhcp host %s: needs a MAC, an IPv4 address and a name (got %q, %v, %q)", h.Key, h.MAC, h.IPv4, h.Name)
	}
	old, _ := readDHCPHost(dir, h.Key)
	lease := fmt.Sprintf("%s,%s,%s\n", h.MAC, h.IPv4, h.Name)
	hosts := fmt.Sprintf("%s %s\n", h.IPv4, h.Name)
	if h.IPv6.IsValid() {
		hosts += fmt.Sprintf("%s %s\n", h.IPv6, h.Name)
	}
	// hosts first: once a container can get its lease, its name resolves.
	if err := writeAtomic(dir, filepath.Join(dir, hostsDirName, h.Key), []byte(hosts), 0o644); err != nil {
		return fmt.Errorf("dhcp host %s: %w", h.Key, err)
	}
	if err := writeAtomic(dir, filepath.Join(dir, dhcpHostsDirName, h.Key), []byte(lease), 0o644); err != nil {
		return fmt.Errorf("dhcp host %s: %w", h.Key, err)
	}
	if old != nil && (old.MAC.String() != h.MAC.String() || old.IPv4 != h.IPv4 || old.Name != h.Name) {
		return signalDnsmasq(dir)
	}
	return nil
}

// RemoveDHCPHost removes KEY's files; a missing one is no error. dnsmasq
// forgets removed hosts/ entries by inotify, but keeps dhcp-hosts entries
// until SIGHUP: it gets one when it runs.
func RemoveDHCPHost(dir, key string) error {
	if err := validKey(key); err != nil {
		return err
	}
	var errs []error
	existed := false
	for _, d := range []string{dhcpHostsDirName, hostsDirName} {
		err := os.Remove(filepath.Join(dir, d, key))
		if err == nil {
			existed = true
		} else if !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if existed {
		errs = append(errs, signalDnsmasq(dir))
	}
	return errors.Join(errs...)
}

// DHCPHosts reads back all entries of dir, in the order of their keys.
func DHCPHosts(dir string) ([]DHCPHost, error) {
	entries, err := os.ReadDir(filepath.Join(dir, dhcpHostsDirName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []DHCPHost
	for _, e := range entries {
		if validKey(e.Name()) != nil {
			continue
		}
		h, err := readDHCPHost(dir, e.Name())
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, *h)
	}
	return out, nil
}

func readDHCPHost(dir, key string) (*DHCPHost, error) {
	data, err := os.ReadFile(filepath.Join(dir, dhcpHostsDirName, key))
	if err != nil {
		return nil, err
	}
	f := strings.Split(strings.TrimSpace(string(data)), ",")
	if len(f) != 3 {
		return nil, fmt.Errorf("%s: not MAC,IPv4,NAME: %q", filepath.Join(dir, dhcpHostsDirName, key), data)
	}
	mac, err1 := net.ParseMAC(f[0])
	ip, err2 := netip.ParseAddr(f[1])
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, dhcpHostsDirName, key), err)
	}
	h := &DHCPHost{Key: key, MAC: mac, IPv4: ip, Name: f[2]}
	if hosts, err := os.ReadFile(filepath.Join(dir, hostsDirName, key)); err == nil {
		for _, l := range strings.Split(string(hosts), "\n") {
			if a, err := netip.ParseAddr(strings.Fields(l + " x")[0]); err == nil && a.Is6() {
				h.IPv6 = a
			}
		}
	}
	return h, nil
}

// signalDnsmasq sends SIGHUP to the dnsmasq of dir (its pid file, checked
// against its command line so that a reused pid is left alone); none
// running is no error.
func signalDnsmasq(dir string) error {
	pid, ok := DnsmasqPID(dir)
	if !ok {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil && err != syscall.ESRCH {
		return fmt.Errorf("signal dnsmasq (pid %d): %w", pid, err)
	}
	return nil
}

// DnsmasqPID is the pid of the dnsmasq running for dir, from its pid file,
// if that process is dnsmasq reading dir's configuration.
func DnsmasqPID(dir string) (int, bool) {
	b, err := os.ReadFile(filepath.Join(dir, DnsmasqPidName))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return 0, false
	}
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	want := DnsmasqArgs(DHCPConfig{Dir: dir})
	if len(args) != len(want) || args[0] != want[0] || args[1] != want[1] {
		return 0, false
	}
	return pid, true
}

// ReleaseLease makes dnsmasq on bridge drop the lease of ip for mac: a
// DHCPRELEASE as the client would send it, from the host through the
// bridge (what dhcp_release of dnsmasq-utils does). No lease is no error
// (dnsmasq ignores the release); neither is no dnsmasq.
func ReleaseLease(bridge string, ip netip.Addr, mac net.HardwareAddr) error {
	if !ip.Is4() || len(mac) != 6 {
		return fmt.Errorf("release lease: need an IPv4 address and a MAC (got %v, %q)", ip, mac)
	}
	ifi, err := net.InterfaceByName(bridge)
	if err != nil {
		return fmt.Errorf("release lease on %s: %w", bridge, err)
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return fmt.Errorf("release lease on %s: %w", bridge, err)
	}
	var server netip.Addr
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if s, ok := netip.AddrFromSlice(n.IP.To4()); ok && n.IP.To4() != nil {
				if p, err := s.Prefix(maskBits(n.Mask)); err == nil && p.Contains(ip) {
					server = s
				}
			}
		}
	}
	if !server.IsValid() {
		return fmt.Errorf("release lease %s: bridge %s has no address in its subnet", ip, bridge)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return fmt.Errorf("release lease: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, bridge); err != nil {
		return fmt.Errorf("release lease: bind to %s: %w", bridge, err)
	}
	pkt := releasePacket(ip, server, mac)
	if err := unix.Sendto(fd, pkt, 0, &unix.SockaddrInet4{Port: 67, Addr: server.As4()}); err != nil {
		return fmt.Errorf("release lease %s to dnsmasq at %s: %w", ip, server, err)
	}
	return nil
}

func maskBits(m net.IPMask) int { ones, _ := m.Size(); return ones }

// releasePacket is a BOOTREQUEST with DHCP message type DHCPRELEASE (RFC 2131).
func releasePacket(ip, server netip.Addr, mac net.HardwareAddr) []byte {
	var b bytes.Buffer
	hdr := make([]byte, 236)
	hdr[0], hdr[1], hdr[2] = 1, 1, 6 // BOOTREQUEST, Ethernet, 6-byte MAC
	binary.BigEndian.PutUint32(hdr[4:], uint32(os.Getpid()))
	a := ip.As4()
	copy(hdr[12:16], a[:]) // ciaddr
	copy(hdr[28:34], mac)  // chaddr
	b.Write(hdr)
	b.Write([]byte{99, 130, 83, 99}) // magic cookie
	s := server.As4()
	b.Write([]byte{53, 1, 7})               // DHCPRELEASE
	b.Write(append([]byte{54, 4}, s[:]...)) // server identifier
	// No client identifier: dnsmasq then finds the lease by MAC, whatever
	// identifier the client used (networkd sends a DUID, udhcpc the MAC).
	b.WriteByte(255)
	return b.Bytes()
}
