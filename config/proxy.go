package config

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// A container's port forwards are a table in config.toml:
//
//	[proxy]
//	web = "tcp:0.0.0.0:8080:80"
//	dns = "udp:[::]:5353:53"
//
// and proxy.NAME on the command line (`lodge config set c
// proxy.web=tcp:0.0.0.0:8080:80`; `proxy.web=` removes it). The value is
// PROTO:LISTEN:HOSTPORT:CONTAINERPORT: connections to the host's LISTEN
// address and HOSTPORT go to the container's first bridged NIC at
// CONTAINERPORT. LISTEN 0.0.0.0 is every IPv4 address of the host
// (127.0.0.1 included), [::] every IPv6 address; forwards of one family
// need the container's address of that family.

// Proxy is one parsed port forward.
type Proxy struct {
	Proto         string     // "tcp" or "udp"
	Listen        netip.Addr // 0.0.0.0 or :: for every local address of the family
	HostPort      uint16
	ContainerPort uint16
}

// String is the form ParseProxy reads.
func (p Proxy) String() string {
	listen := p.Listen.String()
	if p.Listen.Is6() {
		listen = "[" + listen + "]"
	}
	return fmt.Sprintf("%s:%s:%d:%d", p.Proto, listen, p.HostPort, p.ContainerPort)
}

// Overlaps reports whether p and q take the same host port: same protocol
// and port, and addresses that are equal or of which one is the family's
// wildcard.
func (p Proxy) Overlaps(q Proxy) bool {
	return p.Proto == q.Proto && p.HostPort == q.HostPort && p.Listen.Is4() == q.Listen.Is4() &&
		(p.Listen == q.Listen || p.Listen.IsUnspecified() || q.Listen.IsUnspecified())
}

const proxyExample = "tcp:0.0.0.0:8080:80"

// ParseProxy reads PROTO:LISTEN:HOSTPORT:CONTAINERPORT, e.g.
// tcp:0.0.0.0:8080:80 or udp:[::]:5353:53.
func ParseProxy(s string) (Proxy, error) {
	bad := func(format string, args ...any) (Proxy, error) {
		return Proxy{}, fmt.Errorf("%q: %s; write PROTO:LISTEN:HOSTPORT:CONTAINERPORT, e.g. %s (IPv6 in brackets: tcp:[::]:8080:80)",
			s, fmt.Sprintf(format, args...), proxyExample)
	}
	proto, rest, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok {
		return bad("no ':'")
	}
	p := Proxy{Proto: strings.ToLower(proto)}
	if p.Proto != "tcp" && p.Proto != "udp" {
		return bad("protocol %q is not tcp or udp", proto)
	}
	var addr string
	if strings.HasPrefix(rest, "[") {
		end := strings.Index(rest, "]:")
		if end < 0 {
			return bad("an IPv6 listen address needs its closing bracket followed by ':'")
		}
		addr, rest = rest[1:end], rest[end+2:]
	} else if addr, rest, ok = strings.Cut(rest, ":"); !ok {
		return bad("no host port")
	}
	a, err := netip.ParseAddr(addr)
	switch {
	case err != nil || a.Zone() != "":
		return bad("%q is not an IP address (0.0.0.0 for every IPv4 address of the host)", addr)
	case a.Is4In6():
		return bad("%s: write the IPv4 address plainly", a)
	case a.Is6() && a.IsLoopback():
		return bad("[::1] cannot be forwarded (the kernel does not route IPv6 loopback out of the host); use 127.0.0.1")
	case a.IsMulticast() || a.IsLinkLocalUnicast():
		return bad("%s is not a unicast address of the host", a)
	}
	p.Listen = a
	hostPort, containerPort, ok := strings.Cut(rest, ":")
	if !ok {
		return bad("no container port")
	}
	if p.HostPort, err = parsePort(hostPort); err != nil {
		return bad("host port %v", err)
	}
	if p.ContainerPort, err = parsePort(containerPort); err != nil {
		return bad("container port %v", err)
	}
	return p, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not a port (1-65535)", s)
	}
	return uint16(n), nil
}

// proxyNameProblem says what makes name unusable as a forward's name, or "".
func proxyNameProblem(name string) string {
	if name == "" || len(name) > 32 {
		return "must be 1-32 characters"
	}
	for _, r := range name {
		if r > 127 || !isLetter(byte(r)) && !isDigit(byte(r)) && r != '-' && r != '_' {
			return fmt.Sprintf("must not contain %q (letters, digits, '-' and '_')", r)
		}
	}
	return ""
}

// proxyKey is the registry's entry for proxy.NAME: documented like the
// others, set through assignProxy.
func proxyKey() Key {
	return Key{Name: "proxy.NAME", nic: true, Example: proxyExample,
		Doc: "Port forward NAME (letters, digits, '-', '_'): PROTO:LISTEN:HOSTPORT:CONTAINERPORT. Connections to the host's LISTEN address (0.0.0.0: every IPv4 address, 127.0.0.1 included; [::]: every IPv6 address; or one address) at HOSTPORT go to the container's first bridged NIC at CONTAINERPORT, by nftables DNAT, also from the host itself. PROTO is tcp or udp. A host port another container forwards is refused. Applied at start and at once on a running container; empty removes the forward.",
		get: func(*Container) string { return "" }}
}

// assignProxy sets or (empty value) removes proxy.NAME.
func (c *Container) assignProxy(key, value string) error {
	name := strings.TrimPrefix(key, "proxy.")
	if p := proxyNameProblem(name); p != "" {
		return &keyError{Key: key, Err: fmt.Errorf("the forward's name %q %s; e.g. proxy.web=%s", name, p, proxyExample)}
	}
	value = strings.TrimSpace(value)
	if value == "" {
		delete(c.Proxies, name)
		if len(c.Proxies) == 0 {
			c.Proxies = nil
		}
		return nil
	}
	p, err := ParseProxy(value)
	if err != nil {
		return &keyError{Key: key, Err: err}
	}
	if c.Proxies == nil {
		c.Proxies = map[string]string{}
	}
	c.Proxies[name] = p.String()
	return nil
}

// ProxyList parses the container's forwards, sorted by name.
func (c *Container) ProxyList() (names []string, proxies []Proxy, err error) {
	for name := range c.Proxies {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		p, perr := ParseProxy(c.Proxies[name])
		if perr != nil {
			return nil, nil, &keyError{Key: "proxy." + name, Err: perr}
		}
		proxies = append(proxies, p)
	}
	return names, proxies, nil
}

// checkProxies validates the [proxy] table: names, values, and no two
// forwards of the container on one host port.
func checkProxies(c *Container) error {
	var errs []error
	names := make([]string, 0, len(c.Proxies))
	for name := range c.Proxies {
		names = append(names, name)
	}
	slices.Sort(names)
	parsed := map[string]Proxy{}
	for _, name := range names {
		if p := proxyNameProblem(name); p != "" {
			errs = append(errs, keyErrorf("proxy."+name, "the forward's name %q %s", name, p))
			continue
		}
		p, err := ParseProxy(c.Proxies[name])
		if err != nil {
			errs = append(errs, &keyError{Key: "proxy." + name, Err: err})
			continue
		}
		for _, other := range names {
			if q, ok := parsed[other]; ok && p.Overlaps(q) {
				errs = append(errs, keyErrorf("proxy."+name, "%s takes the host port of proxy.%s (%s); choose another host port or listen address", p, other, q))
			}
		}
		parsed[name] = p
	}
	return errors.Join(errs...)
}
