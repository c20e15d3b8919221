package config

import (
	"strings"
	"testing"
)

func TestParseProxy(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"tcp:0.0.0.0:8080:80", "tcp:0.0.0.0:8080:80"},
		{"TCP:127.0.0.1:8080:80", "tcp:127.0.0.1:8080:80"},
		{"udp:[::]:5353:53", "udp:[::]:5353:53"},
		{" tcp:[fd00::1]:443:8443 ", "tcp:[fd00::1]:443:8443"},
		{"tcp:192.0.2.7:65535:1", "tcp:192.0.2.7:65535:1"},
	} {
		p, err := ParseProxy(tt.in)
		if err != nil || p.String() != tt.want {
			t.Errorf("ParseProxy(%q) = %v, %v; want %s", tt.in, p, err, tt.want)
		}
	}
	for _, tt := range []struct{ in, why string }{
		{"sctp:0.0.0.0:1:1", "not tcp or udp"},
		{"tcp:0.0.0.0:8080", "no container port"},
		{"tcp:0.0.0.0:0:80", "host port"},
		{"tcp:0.0.0.0:8080:70000", "container port"},
		{"tcp:localhost:8080:80", "not an IP address"},
		{"tcp:::1:8080:80", "not an IP address"},
		{"tcp:[::1]:8080:80", "use 127.0.0.1"},
		{"tcp:[::]8080:80", "closing bracket"},
		{"tcp:224.0.0.1:8080:80", "not a unicast"},
		{"tcp", "no ':'"},
	} {
		_, err := ParseProxy(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.why) || !strings.Contains(err.Error(), proxyExample) {
			t.Errorf("ParseProxy(%q) = %v; want an error about %q with an example", tt.in, err, tt.why)
		}
	}
}

func TestProxyKeys(t *testing.T) {
	c := Default()
	if err := c.Set("proxy.web", "tcp:0.0.0.0:8080:80"); err != nil {
		t.Fatal(err)
	}
	if err := c.Set("proxy.dns", "udp:0.0.0.0:8080:53"); err != nil { // another protocol: no clash
		t.Fatal(err)
	}
	if got, _ := c.Get("proxy.web"); got != "tcp:0.0.0.0:8080:80" {
		t.Errorf("Get(proxy.web) = %q", got)
	}
	err := c.Set("proxy.alt", "tcp:127.0.0.1:8080:81")
	if err == nil || !strings.Contains(err.Error(), "proxy.web") {
		t.Errorf("a second forward of tcp 8080 (0.0.0.0 covers 127.0.0.1): %v; want it refused naming proxy.web", err)
	}
	if err := c.Set("proxy.v6", "tcp:[::]:8080:80"); err != nil {
		t.Errorf("an IPv6 forward of the same port: %v", err)
	}
	if err := c.Set("proxy.bad name", "tcp:0.0.0.0:1:1"); err == nil {
		t.Error("a name with a blank was accepted")
	}
	if err := c.Set("proxy.web", ""); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Proxies["web"]; ok {
		t.Error("proxy.web= did not remove the forward")
	}
	names, ps, err := c.ProxyList()
	if err != nil || strings.Join(names, ",") != "dns,v6" || ps[0].Proto != "udp" {
		t.Errorf("ProxyList = %v %v %v", names, ps, err)
	}
	c.Set("proxy.dns", "")
	c.Set("proxy.v6", "")
	if c.Proxies != nil {
		t.Errorf("no forwards left, but Proxies = %v", c.Proxies)
	}
}

func TestParseBitRate(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want BitRate
		str  string
	}{
		{"10Mbit", 10e6, "10Mbit"},
		{"100mbit", 100e6, "100Mbit"},
		{"1Gbit", 1e9, "1Gbit"},
		{"1.5Gbit", 1.5e9, "1.5Gbit"},
		{"500kbit", 500e3, "500kbit"},
		{"8000bit", 8000, "8kbit"},
		{"0", 0, "0"},
		{"", 0, "0"},
	} {
		got, err := ParseBitRate(tt.in)
		if err != nil || got != tt.want || got.String() != tt.str {
			t.Errorf("ParseBitRate(%q) = %d (%s), %v; want %d (%s)", tt.in, got, got, err, tt.want, tt.str)
		}
		if back, err := ParseBitRate(got.String()); err != nil || back != got {
			t.Errorf("%s does not parse back: %d %v", got, back, err)
		}
	}
	for _, tt := range []struct{ in, why string }{
		{"10", "no unit"},
		{"10MB", "bits, not bytes"},
		{"10Mbps", "bits, not bytes"},
		{"10 furlongs", "unknown unit"},
		{"1kbit", "below 8kbit"},
		{"-1Mbit", "does not start with a number"},
		{"1.2.3Mbit", "not a number"},
	} {
		if _, err := ParseBitRate(tt.in); err == nil || !strings.Contains(err.Error(), tt.why) {
			t.Errorf("ParseBitRate(%q) = %v; want an error about %q", tt.in, err, tt.why)
		}
	}
	c := Default()
	if err := c.Set("limits.network.egress", "10Mbit"); err != nil || c.Limits.Network.Egress != 10e6 {
		t.Errorf("Set(limits.network.egress) = %v, %d", err, c.Limits.Network.Egress)
	}
}
