package network

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Host checks at network start: who else holds the ports dnsmasq needs.

// PortUsers lists processes listening on UDP/TCP port (53, 67, 547) on addr or on the wildcard address, from /proc/net/{udp,udp6,tcp,tcp6} and /proc/*/fd socket inodes ("dnsmasq (pid 123) on 0.0.0.0:53").
// The entries are sorted; a socket whose process is not found (another
// network namespace's /proc, or gone meanwhile) is listed as "unknown
// process". An invalid addr matches any address.
func PortUsers(addr netip.Addr, port int) ([]string, error) {
	sockets := map[uint64][]string{} // inode → "ADDR:PORT/proto"
	for _, f := range []string{"tcp", "tcp6", "udp", "udp6"} {
		found, err := listeners(filepath.Join("/proc/net", f), strings.HasPrefix(f, "tcp"), addr, port)
		if err != nil {
			return nil, err
		}
		for inode, a := range found {
			sockets[inode] = append(sockets[inode], a+"/"+f[:3])
		}
	}
	if len(sockets) == 0 {
		return nil, nil
	}
	var out []string
	owners := socketOwners(sockets)
	for inode, where := range sockets {
		who := owners[inode]
		if who == "" {
			who = "unknown process"
		}
		for _, w := range where {
			out = append(out, who+" on "+w)
		}
	}
	sort.Strings(out)
	return out, nil
}

// ListensOn reports whether process pid holds a UDP socket bound to
// addr:port itself (not the wildcard): a cheaper PortUsers for one process.
func ListensOn(pid int, addr netip.Addr, port int) bool {
	inodes := map[uint64]bool{}
	for _, f := range []string{"udp", "udp6"} {
		found, _ := listeners(filepath.Join("/proc/net", f), false, addr, port)
		for inode, a := range found {
			if ap, err := netip.ParseAddrPort(a); err == nil && ap.Addr().Unmap() == addr.Unmap() {
				inodes[inode] = true
			}
		}
	}
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, fd := range fds {
		link, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if inode, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]"), 10, 64); err == nil && inodes[inode] {
			return true
		}
	}
	return false
}

// listeners parses one /proc/net table: the inodes of listening TCP and
// unconnected (bound) UDP sockets on port at addr or the wildcard.
func listeners(path string, tcp bool, addr netip.Addr, port int) (map[uint64]string, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil // no IPv6, say
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[uint64]string{}
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 {
			continue
		}
		// TCP_LISTEN is 0A; a bound UDP socket is TCP_CLOSE, 07.
		if tcp && fields[3] != "0A" || !tcp && fields[3] != "07" {
			continue
		}
		a, p, ok := parseProcAddr(fields[1])
		if !ok || p != port {
			continue
		}
		if addr.IsValid() && !a.IsUnspecified() && a.Unmap() != addr.Unmap() {
			continue
		}
		inode, err := strconv.ParseUint(fields[9], 10, 64)
		if err != nil || inode == 0 {
			continue
		}
		out[inode] = netip.AddrPortFrom(a, uint16(p)).String()
	}
	return out, sc.Err()
}

// parseProcAddr parses "0100007F:0035" (IPv4) or the 32-digit IPv6 form:
// the address is in 32-bit words of host (little-endian) byte order.
func parseProcAddr(s string) (netip.Addr, int, bool) {
	h, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.Addr{}, 0, false
	}
	port, err := strconv.ParseUint(p, 16, 16)
	raw, err2 := hex.DecodeString(h)
	if err != nil || err2 != nil || len(raw) != 4 && len(raw) != 16 {
		return netip.Addr{}, 0, false
	}
	for i := 0; i < len(raw); i += 4 {
		binary.BigEndian.PutUint32(raw[i:], binary.LittleEndian.Uint32(raw[i:]))
	}
	a, _ := netip.AddrFromSlice(raw)
	return a, int(port), true
}

// socketOwners maps the inodes wanted to "COMM (pid N)" by the sockets in
// /proc/*/fd.
func socketOwners(wanted map[uint64][]string) map[uint64]string {
	out := map[uint64]string{}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		for _, fd := range fds {
			link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
			if err != nil || !strings.HasPrefix(link, "socket:[") {
				continue
			}
			inode, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]"), 10, 64)
			if _, ok := wanted[inode]; err != nil || !ok || out[inode] != "" {
				continue
			}
			comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
			out[inode] = fmt.Sprintf("%s (pid %d)", strings.TrimSpace(string(comm)), pid)
		}
	}
	return out
}

// IPForwarding reports net.ipv4.ip_forward of the caller's namespace.
func IPForwarding() (bool, error) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	if err != nil {
		return false, err
	}
	return strings.TrimSpace(string(b)) == "1", nil
}
