package network

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"strings"
)

// IfNameMax is the longest interface name the kernel takes (IFNAMSIZ-1).
const IfNameMax = 15

// AliasPrefix starts the interface alias (IFLA_IFALIAS) of every link lodge
// creates. The alias holds the full identity the 15-byte name cannot.
const AliasPrefix = "lodge:"

// BridgeName is the bridge of network: "lodge-NAME" when NAME has at most 9
// bytes of [a-z0-9-], else "lodge-" + its first 2 such bytes + "_" + 6 hex
// digits of its SHA-256. The short form never holds "_", so the two forms
// cannot meet; two long names share a bridge name only on a 24-bit hash
// collision, which EnsureBridge detects through the alias and refuses.
func BridgeName(network string) string {
	if len(network) <= 9 && network != "" && clean(network) == network {
		return "lodge-" + network
	}
	return "lodge-" + head(clean(network), 2) + "_" + hash6(network)
}

// HostVethName is the host end of a container's NIC: "lv" + up to 6 bytes
// of the container's name ([a-z0-9-] only) + "_" + 6 hex digits of the
// SHA-256 of container and NIC name, at most 15 bytes: readable in `ip
// link`, and unique up to a 24-bit collision that LinkAdd reports as EEXIST.
func HostVethName(container, nic string) string { return nicName("lv", container, nic) }

// RestoreVethName is the temporary name, in the host's namespace, of a
// NIC's container end made for a restore (AddRestoreNIC), named like the
// host end with "lr".
func RestoreVethName(container, nic string) string { return nicName("lr", container, nic) }

// IfbName is the ifb device that shapes what a container's NIC sends (the
// host veth's ingress is redirected to it), named like the veth with "li".
func IfbName(container, nic string) string { return nicName("li", container, nic) }

// NICAlias is the alias of a NIC's host-side links.
func NICAlias(container, nic string) string {
	return fmt.Sprintf("%snic container=%s nic=%s", AliasPrefix, container, nic)
}

// BridgeAlias is the alias of a network's bridge.
func BridgeAlias(network string) string { return AliasPrefix + "network " + network }

func nicName(prefix, container, nic string) string {
	return prefix + head(clean(container), 6) + "_" + hash6(container+"\x00"+nic)
}

// MAC derives a stable, locally administered unicast MAC address from seed
// (e.g. "container/eth0"): bit 1 of the first octet set, bit 0 clear.
func MAC(seed string) net.HardwareAddr {
	sum := sha256.Sum256([]byte("lodge-mac\x00" + seed))
	mac := net.HardwareAddr(sum[:6])
	mac[0] = mac[0]&^0x01 | 0x02
	return mac
}

func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return -1
	}, strings.ToLower(s))
}

func head(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func hash6(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:3])
}
