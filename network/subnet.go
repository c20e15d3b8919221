package network

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// DefaultPool is where AllocateIPv4 looks for a network's /24.
var DefaultPool = netip.MustParsePrefix("10.0.0.0/8")

// ErrNoSubnet means every candidate overlaps a taken prefix.
var ErrNoSubnet = errors.New("no free subnet")

// AllocateIPv4 returns the first /24 of pool that overlaps no prefix of
// taken. The order is deterministic: it starts at the /24 chosen by a hash
// of seed (the network's name, so that networks spread over the pool) and
// walks up, wrapping around. Default routes (/0) in taken are ignored: they
// overlap everything.
func AllocateIPv4(pool netip.Prefix, taken []netip.Prefix, seed string) (netip.Prefix, error) {
	pool = pool.Masked()
	if !pool.Addr().Is4() || pool.Bits() > 24 {
		return netip.Prefix{}, fmt.Errorf("pool %s: not an IPv4 prefix of /24 or larger", pool)
	}
	n := uint32(1) << (24 - pool.Bits())
	base := binary.BigEndian.Uint32(pool.Addr().AsSlice())
	start := seedHash(seed) % n
	for i := range n {
		idx := (start + i) % n
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], base+idx<<8)
		cand := netip.PrefixFrom(netip.AddrFrom4(b), 24)
		if !overlapsAny(cand, taken) {
			return cand, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("%w in %s: all %d /24s overlap a route or address", ErrNoSubnet, pool, n)
}

// AllocateULA returns a unique local IPv6 /64 (RFC 4193: fd00::/8, a 40-bit
// global ID, subnet ID 0) whose global ID is a hash of seed (e.g. the
// host's machine-id and the network's name), rehashed with a counter while
// it overlaps a prefix of taken.
func AllocateULA(seed string, taken []netip.Prefix) (netip.Prefix, error) {
	for try := range 256 {
		sum := sha256.Sum256(fmt.Appendf(nil, "lodge-ula\x00%s\x00%d", seed, try))
		var a [16]byte
		a[0] = 0xfd
		copy(a[1:6], sum[:5])
		cand := netip.PrefixFrom(netip.AddrFrom16(a), 64)
		if !overlapsAny(cand, taken) {
			return cand, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("%w: 256 ULA /64s for %q all overlap a route or address", ErrNoSubnet, seed)
}

// Gateway is the host's (the bridge's) address in subnet: its first host
// address (.1, or ::1), with the subnet's length.
func Gateway(subnet netip.Prefix) netip.Prefix {
	return netip.PrefixFrom(subnet.Masked().Addr().Next(), subnet.Bits())
}

func overlapsAny(p netip.Prefix, taken []netip.Prefix) bool {
	for _, t := range taken {
		if t.Bits() > 0 && t.Overlaps(p) {
			return true
		}
	}
	return false
}

func seedHash(seed string) uint32 {
	sum := sha256.Sum256([]byte(seed))
	return binary.BigEndian.Uint32(sum[:4])
}

// PickAddress returns a container's IPv4 address in subnet for the NIC
// with MAC mac: the host address chosen by a hash of the MAC, or the next
// one up (wrapping) that taken refuses not, skipping the network, gateway
// and broadcast addresses. The same MAC gets the same address as long as
// it is free: a container's address is predictable across restarts.
func PickAddress(subnet netip.Prefix, mac []byte, taken func(netip.Addr) bool) (netip.Addr, error) {
	subnet = subnet.Masked()
	if !subnet.Addr().Is4() || subnet.Bits() > 30 {
		return netip.Addr{}, fmt.Errorf("subnet %s: not an IPv4 subnet with room for containers", subnet)
	}
	hosts := uint32(1)<<(32-subnet.Bits()) - 3 // all but network, gateway (.1) and broadcast
	base := binary.BigEndian.Uint32(subnet.Addr().AsSlice()) + 2
	start := seedHash(string(mac)) % hosts
	for i := range hosts {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], base+(start+i)%hosts)
		if a := netip.AddrFrom4(b); !taken(a) {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("subnet %s is full: all %d container addresses are taken", subnet, hosts)
}
