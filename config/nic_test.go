package config

import (
	"strings"
	"testing"
)

func TestNICKeys(t *testing.T) {
	c := Default()
	for _, a := range [][2]string{{"network.0.network", "web"}, {"network.0.ipv4", "10.1.2.3"}, {"network.1.type", "none"}} {
		if err := c.Set(a[0], a[1]); err != nil {
			t.Fatalf("Set(%s, %s): %v", a[0], a[1], err)
		}
	}
	if len(c.Networks) != 2 || c.Networks[0].Network != "web" || c.Networks[0].IPv4 != "10.1.2.3" || c.Networks[1].Kind() != NICNone {
		t.Fatalf("Networks = %+v", c.Networks)
	}
	if got, _ := c.Get("network.0.ipv4"); got != "10.1.2.3" {
		t.Errorf("Get(network.0.ipv4) = %q", got)
	}
	if c.Networks[1].InterfaceName(1) != "eth1" || c.Networks[1].NetworkName() != "" || (NIC{}).NetworkName() != DefaultNetwork {
		t.Error("defaults of name or network are wrong")
	}
	// Empty resets a field: DHCP again.
	if err := c.Set("network.0.ipv4", ""); err != nil || c.Networks[0].IPv4 != "" {
		t.Errorf("reset ipv4: %v, %+v", err, c.Networks[0])
	}
	// network.N= removes the entry.
	if err := c.Set("network.0", ""); err != nil || len(c.Networks) != 1 || c.Networks[0].Kind() != NICNone {
		t.Errorf("remove NIC 0: %v, %+v", err, c.Networks)
	}
	// The file round-trips as [[network]] tables.
	text, err := c.Marshal()
	if err != nil || !strings.Contains(string(text), "[[network]]") {
		t.Fatalf("Marshal: %v\n%s", err, text)
	}
	back, err := Parse("config.toml", text)
	if err != nil || len(back.Networks) != 1 || back.Networks[0].Type != NICNone {
		t.Errorf("Parse(Marshal): %v, %+v", err, back)
	}
}

func TestNICErrors(t *testing.T) {
	tests := []struct {
		sets    [][2]string
		wantErr string
	}{
		{[][2]string{{"network.1.network", "web"}}, "the container has 0 NICs; add them in order: the next is network.0"},
		{[][2]string{{"network.0.adress", "x"}}, `unknown key "network.0.adress"`},
		{[][2]string{{"network.x.ipv4", "x"}}, "NIC keys are network.N.KEY"},
		{[][2]string{{"network.0", ""}}, "there is no NIC 0 to remove"},
		{[][2]string{{"network.0.ipv4", "10.1.2.3/24"}}, `network.0.ipv4: "10.1.2.3/24" is not an IPv4 address`},
		{[][2]string{{"network.0.ipv4", "fd00::1"}}, `is not an IPv4 address`},
		{[][2]string{{"network.0.ipv6", "10.0.0.1"}}, `network.0.ipv6: "10.0.0.1" is not an IPv6 address`},
		{[][2]string{{"network.0.hwaddr", "01:00:00:00:00:01"}}, "network.0.hwaddr: 01:00:00:00:00:01 is a multicast address"},
		{[][2]string{{"network.0.hwaddr", "zz"}}, `network.0.hwaddr: "zz" is not a MAC address`},
		{[][2]string{{"network.0.type", "tap"}}, `network.0.type: "tap" must be bridged, macvlan or none`},
		{[][2]string{{"network.0.type", "macvlan"}}, "network.0.parent: a macvlan NIC needs the host interface"},
		{[][2]string{{"network.0.mtu", "20"}}, "network.0.mtu: 20 is outside 68-65535"},
		{[][2]string{{"network.0.mtu", "big"}}, `network.0.mtu: "big" is not a whole number`},
		{[][2]string{{"network.0.network", "bad_name"}}, `network.0.network: invalid network name "bad_name"`},
		{[][2]string{{"network.0.name", "lo"}}, `network.0.name: "lo" is reserved`},
		{[][2]string{{"network.0.name", "eth1"}, {"network.1.type", "bridged"}}, `network.1.name: "eth1" is also the name of NIC 0`},
		{[][2]string{{"network.0.hwaddr", "0a:00:00:00:00:01"}, {"network.1.hwaddr", "0a:00:00:00:00:01"}}, "network.1.hwaddr: 0a:00:00:00:00:01 is also the address of NIC 0"},
	}
	for _, tt := range tests {
		c := Default()
		var err error
		for _, s := range tt.sets {
			if err = c.Set(s[0], s[1]); err != nil {
				break
			}
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%v: error %v, want %q", tt.sets, err, tt.wantErr)
		}
	}
}

func TestNICFileErrorsHaveLines(t *testing.T) {
	text := "version = 1\n\n[[network]]\nnetwork = \"web\"\n\n[[network]]\nipv4 = \"nope\"\nbogus = 1\n"
	_, err := Parse("c.toml", []byte(text))
	if err == nil || !strings.Contains(err.Error(), `c.toml:8: unknown key "network.bogus"`) {
		t.Errorf("unknown key in [[network]]: %v", err)
	}
	_, err = Parse("c.toml", []byte(strings.Replace(text, "bogus = 1\n", "", 1)))
	if err == nil || !strings.Contains(err.Error(), `c.toml:7: network.1.ipv4: "nope"`) {
		t.Errorf("bad ipv4 in the second [[network]]: %v", err)
	}
}

func TestValidateNetworkName(t *testing.T) {
	for _, ok := range []string{"default", "web", "a-b-1", "abcdefghijklmno"} {
		if err := ValidateNetworkName(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "1web", "web-", "a_b", "abcdefghijklmnop"} {
		if ValidateNetworkName(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
