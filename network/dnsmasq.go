package network

import (
	"fmt"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
)

// One dnsmasq per managed network serves DHCP (fixed leases only), DNS (the
// containers' names) and IPv6 router advertisements on the network's bridge,
// and nothing else: it binds to the bridge's addresses only, reads no
// /etc/dnsmasq.conf and no /etc/hosts, and runs in the foreground under
// lodge's supervisor. Its files live in the network's directory (Dir):
//
//	dnsmasq.conf    RenderDnsmasqConf's output (dnsmasq -C reads only it)
//	dhcp-hosts/KEY  one fixed lease per container NIC (dhcp-hostsdir)
//	hosts/KEY       the NIC's DNS names (hostsdir)
//	dnsmasq.leases  the leases dnsmasq hands out
//	dnsmasq.log     its log
//	dnsmasq.pid     its pid (for SIGHUP when a fixed lease is removed)
//
// dnsmasq drops to the user DnsmasqUser, which Debian's dnsmasq-base
// creates. It opens the lease, log and pid files as root before it does; the
// two host directories it reads later, whenever inotify tells it they
// changed, so PrepareDHCPDir makes them the user's (mode 0500: it reads,
// only root writes) and Dir traversable (0711, no listing).

// DnsmasqPath is Debian's dnsmasq-base binary. (The dnsmasq package would
// also start a host-wide dnsmasq service; lodge needs only the binary.)
const DnsmasqPath = "/usr/sbin/dnsmasq"

// DnsmasqUser is the user dnsmasq drops to (Debian's dnsmasq-base creates
// it, shared with any other dnsmasq of the host).
const DnsmasqUser = "dnsmasq"

// DHCPConfig describes one network's dnsmasq.
type DHCPConfig struct {
	Network  string       // the network's kernel identity (netID, e.g. "t1-default")
	Bridge   string       // the bridge dnsmasq binds to (only it)
	IPv4     netip.Prefix // subnet; the bridge has Gateway(IPv4)
	IPv6     netip.Prefix // /64 or zero: router advertisements (SLAAC) when set
	Dir      string       // ROOT/networks/NAME: dnsmasq.conf, dhcp-hosts/, hosts/, dnsmasq.leases, dnsmasq.log live here
	Domain   string       // DNS domain of the containers, "lodge"
	Upstream bool         // forward other queries to the host's resolvers (only for --nat networks); false: no-resolv
}

// File names in DHCPConfig.Dir.
const (
	DnsmasqConfName  = "dnsmasq.conf"
	DnsmasqLeaseName = "dnsmasq.leases"
	DnsmasqLogName   = "dnsmasq.log"
	DnsmasqPidName   = "dnsmasq.pid"
	dhcpHostsDirName = "dhcp-hosts"
	hostsDirName     = "hosts"
)

// leaseTime is how long a lease lasts. The addresses are fixed, so its
// length matters little: an hour keeps a container that lost its dnsmasq
// (killed; restarted by the supervisor) from noticing.
const leaseTime = "1h"

// RenderDnsmasqConf is the dnsmasq.conf of c.
func RenderDnsmasqConf(c DHCPConfig) string {
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	gw4 := Gateway(c.IPv4).Addr()
	line("# Written by lodge for network %s; changes are overwritten when the network starts.", c.Network)
	// Only the bridge: its addresses, never the wildcard, never lo (which
	// interface= would add by itself). bind-dynamic binds each address like
	// bind-interfaces, and also those that appear later (the bridge's
	// link-local one, once a port is up), which bind-interfaces fails to
	// bind after dnsmasq dropped its privileges.
	line("interface=%s", c.Bridge)
	line("except-interface=lo")
	line("bind-dynamic")
	line("listen-address=%s", gw4)
	if c.IPv6.IsValid() {
		line("listen-address=%s", Gateway(c.IPv6).Addr())
	}
	line("user=%s", DnsmasqUser)
	line("keep-in-foreground")
	line("pid-file=%s", filepath.Join(c.Dir, DnsmasqPidName))
	line("log-facility=%s", filepath.Join(c.Dir, DnsmasqLogName))
	line("quiet-ra") // no line per periodic advertisement; DHCP transactions are logged
	// DNS: the containers' names from hosts/, as NAME and NAME.DOMAIN;
	// queries for DOMAIN are never forwarded.
	line("no-hosts")
	line("hostsdir=%s", filepath.Join(c.Dir, hostsDirName))
	line("domain=%s", c.Domain)
	line("local=/%s/", c.Domain)
	line("expand-hosts")
	line("domain-needed")
	line("bogus-priv")
	if c.Upstream {
		line("resolv-file=/etc/resolv.conf")
	} else {
		line("no-resolv")
	}
	// DHCPv4: fixed leases only ("static": unknown MACs get nothing).
	line("dhcp-range=%s,static,%s,%s", c.IPv4.Masked().Addr(), netmask(c.IPv4), leaseTime)
	line("dhcp-hostsdir=%s", filepath.Join(c.Dir, dhcpHostsDirName))
	line("dhcp-leasefile=%s", filepath.Join(c.Dir, DnsmasqLeaseName))
	line("dhcp-authoritative")
	line("dhcp-no-override")
	line("dhcp-option=option:router,%s", gw4)
	line("dhcp-option=option:dns-server,%s", gw4)
	line("dhcp-option=option:domain-search,%s", c.Domain)
	line("dhcp-option=option:domain-name,%s", c.Domain)
	if c.IPv6.IsValid() {
		// Router advertisements only (SLAAC, EUI-64 from the MAC), with the
		// gateway as DNS server (RDNSS); no DHCPv6 (port 547).
		line("enable-ra")
		line("dhcp-range=%s,ra-only,%d,%s", c.IPv6.Masked().Addr(), c.IPv6.Bits(), leaseTime)
		line("dhcp-option=option6:dns-server,[%s]", Gateway(c.IPv6).Addr())
		line("dhcp-option=option6:domain-search,%s", c.Domain)
	}
	return b.String()
}

func netmask(p netip.Prefix) string {
	m := uint32(0xffffffff) << (32 - p.Bits())
	return netip.AddrFrom4([4]byte{byte(m >> 24), byte(m >> 16), byte(m >> 8), byte(m)}).String()
}

// DnsmasqArgs is the command that runs c's dnsmasq (in the foreground).
func DnsmasqArgs(c DHCPConfig) []string {
	return []string{DnsmasqPath, "--conf-file=" + filepath.Join(c.Dir, DnsmasqConfName)}
}

// PrepareDHCPDir writes c's dnsmasq.conf and makes the directories dnsmasq
// reads after it dropped to DnsmasqUser reachable by that user (see the top
// of the file). Dir's parents must be traversable by the user: it says
// which one is not.
func PrepareDHCPDir(c DHCPConfig) error {
	if _, err := os.Stat(DnsmasqPath); err != nil {
		return fmt.Errorf("dnsmasq is not installed (%w): apt-get install dnsmasq-base (or make deps)", err)
	}
	u, err := user.Lookup(DnsmasqUser)
	if err != nil {
		return fmt.Errorf("user %s, which dnsmasq runs as, is missing (%v): reinstall dnsmasq-base", DnsmasqUser, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	if err := os.MkdirAll(c.Dir, 0o711); err != nil {
		return err
	}
	if err := os.Chmod(c.Dir, 0o711); err != nil {
		return err
	}
	for _, d := range []string{dhcpHostsDirName, hostsDirName} {
		p := filepath.Join(c.Dir, d)
		if err := os.Mkdir(p, 0o500); err != nil && !os.IsExist(err) {
			return err
		}
		if err := os.Lchown(p, uid, 0); err != nil {
			return err
		}
		if err := os.Chmod(p, 0o500); err != nil {
			return err
		}
	}
	for dir := filepath.Dir(c.Dir); ; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("dnsmasq runs as user %s and must reach %s, but %s is not traversable for it (mode %o): chmod o+x %s, or use a lodge root below traversable directories",
				DnsmasqUser, c.Dir, dir, fi.Mode().Perm(), dir)
		}
		if dir == "/" {
			break
		}
	}
	return writeAtomic(c.Dir, filepath.Join(c.Dir, DnsmasqConfName), []byte(RenderDnsmasqConf(c)), 0o644)
}

// writeAtomic writes path through a temporary file in tmpDir (on the same
// file system): the host directories dnsmasq watches see only the rename.
func writeAtomic(tmpDir, path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(tmpDir, ".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
