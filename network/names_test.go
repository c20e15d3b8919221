package network

import (
	"strings"
	"testing"
)

func TestNamesFitAndDiffer(t *testing.T) {
	seen := map[string]string{}
	for _, n := range []string{"default", "lan", "a-very-long-network-name", "a-very-long-network-nam2", "UPPER", "x_y", "123456789", "1234567890"} {
		b := BridgeName(n)
		if len(b) > IfNameMax || !strings.HasPrefix(b, "lodge-") {
			t.Errorf("BridgeName(%q) = %q", n, b)
		}
		if other, ok := seen[b]; ok {
			t.Errorf("networks %q and %q share bridge %q", n, other, b)
		}
		seen[b] = n
	}
	if got := BridgeName("default"); got != "lodge-default" {
		t.Errorf("BridgeName(default) = %q", got)
	}
	for _, c := range []string{"web", "a-rather-long-container-name", "Ünïcode"} {
		for _, nic := range []string{"eth0", "eth1"} {
			v, i := HostVethName(c, nic), IfbName(c, nic)
			if len(v) > IfNameMax || len(i) > IfNameMax || !strings.HasPrefix(v, "lv") || !strings.HasPrefix(i, "li") {
				t.Errorf("names for %s/%s: %q %q", c, nic, v, i)
			}
			if other, ok := seen[v]; ok {
				t.Errorf("%s/%s and %s share %q", c, nic, other, v)
			}
			seen[v] = c + "/" + nic
		}
	}
}

func TestMAC(t *testing.T) {
	a, b := MAC("web/eth0"), MAC("web/eth1")
	if a.String() != MAC("web/eth0").String() {
		t.Error("MAC is not stable")
	}
	if a.String() == b.String() {
		t.Error("different seeds gave the same MAC")
	}
	for i := range 1000 {
		m := MAC(strings.Repeat("x", i))
		if m[0]&0x02 == 0 || m[0]&0x01 != 0 || len(m) != 6 {
			t.Fatalf("MAC %s is not a locally administered unicast address", m)
		}
	}
}
