package network

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Legacy iptables (x_tables, not nftables) keeps its rules in the kernel as
// one blob per table, read with getsockopt on a raw socket: IPT_SO_GET_INFO
// gives the hook entry points and "underflows" (the entry that holds a
// built-in chain's policy), IPT_SO_GET_ENTRIES the blob of entries. The
// layouts (linux/netfilter_ipv4/ip_tables.h, netfilter_ipv6/ip6_tables.h):
//
//	struct ipt_getinfo { char name[32]; u32 valid_hooks, hook_entry[5], underflow[5], num_entries, size; }
//	struct ipt_get_entries { char name[32]; u32 size; (pad to 8) struct ipt_entry entrytable[]; }
//	struct ipt_entry  { struct ipt_ip  ip (84 bytes);  u32 nfcache; u16 target_offset, next_offset; ... }
//	struct ip6t_entry { struct ip6t_ip6 ip (136 bytes); u32 nfcache; u16 target_offset, next_offset; ... }
//	struct xt_entry_target { u16 size; char name[29]; u8 revision; } then, for the standard target
//	(name ""), an int verdict: -NF_DROP-1 = -1 drops, -NF_ACCEPT-1 = -2 accepts, >= 0 jumps.
const (
	soGetInfo    = 64 // IPT_SO_GET_INFO and IP6T_SO_GET_INFO
	soGetEntries = 65
	hookForward  = 2 // NF_INET_FORWARD
	verdictDrop  = -1
)

type legacyFamily struct {
	name, tablesFile, tool string
	domain, level          int
	ipSize                 int // sizeof(struct ipt_ip) or (struct ip6t_ip6)
}

var legacyFamilies = []legacyFamily{
	{"ip", "ip_tables_names", "iptables-legacy", unix.AF_INET, unix.IPPROTO_IP, 84},
	{"ip6", "ip6_tables_names", "ip6tables-legacy", unix.AF_INET6, unix.IPPROTO_IPV6, 136},
}

// legacyForwardDrops reads the FORWARD chain of the legacy filter tables of
// the calling thread's namespace. A table that is not loaded is not asked
// for: asking would load it (the kernel instantiates tables on first use).
func legacyForwardDrops() ([]ForwardDrop, error) {
	var out []ForwardDrop
	for _, f := range legacyFamilies {
		names, _ := os.ReadFile("/proc/thread-self/net/" + f.tablesFile)
		if !strings.Contains("\n"+string(names), "\nfilter\n") {
			continue
		}
		drops, err := f.forwardDrops()
		if err != nil {
			return nil, fmt.Errorf("read %s filter table: %w", f.tool, err)
		}
		out = append(out, drops...)
	}
	return out, nil
}

func (f legacyFamily) forwardDrops() ([]ForwardDrop, error) {
	fd, err := unix.Socket(f.domain, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	info := make([]byte, 84)
	copy(info, "filter")
	if err := getsockopt(fd, f.level, soGetInfo, info); err != nil {
		return nil, fmt.Errorf("IPT_SO_GET_INFO: %w", err)
	}
	u32 := func(off int) uint32 { return binary.NativeEndian.Uint32(info[off:]) }
	entry, underflow, size := u32(36+4*hookForward), u32(56+4*hookForward), u32(80)
	if u32(32)&(1<<hookForward) == 0 {
		return nil, nil
	}
	buf := make([]byte, 40+size)
	copy(buf, "filter")
	binary.NativeEndian.PutUint32(buf[32:], size)
	if err := getsockopt(fd, f.level, soGetEntries, buf); err != nil {
		return nil, fmt.Errorf("IPT_SO_GET_ENTRIES: %w", err)
	}
	return f.scan(buf[40:], entry, underflow), nil
}

// scan walks the FORWARD chain's entries, from its hook entry to its
// underflow (the policy), and reports drops, rejects and the policy.
func (f legacyFamily) scan(blob []byte, entry, underflow uint32) []ForwardDrop {
	var out []ForwardDrop
	base := ForwardDrop{Source: f.tool, Family: f.name, Table: "filter", Chain: "FORWARD", Inspect: f.tool + " -S FORWARD"}
	for off := entry; off <= underflow && int(off)+f.ipSize+8 <= len(blob); {
		e := blob[off:]
		targetOff := binary.NativeEndian.Uint16(e[f.ipSize+4:])
		next := binary.NativeEndian.Uint16(e[f.ipSize+6:])
		if next == 0 || int(targetOff)+36 > len(e) {
			break
		}
		t := e[targetOff:]
		name := string(bytes.TrimRight(t[2:31], "\x00"))
		verdict := int32(binary.NativeEndian.Uint32(t[32:]))
		d := base
		switch {
		case off == underflow && name == "" && verdict == verdictDrop:
			d.What = "policy drop"
		case off != underflow && name == "" && verdict == verdictDrop:
			d.What = "rule drops"
		case off != underflow && name == "REJECT":
			d.What = "rule rejects"
		}
		if d.What != "" {
			out = append(out, d)
		}
		off += uint32(next)
	}
	return out
}

func getsockopt(fd, level, opt int, buf []byte) error {
	n := uint32(len(buf))
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt),
		uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
	if errno != 0 {
		return errno
	}
	return nil
}
