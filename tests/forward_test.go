package tests

import (
	"strings"
	"testing"
)

// Port forwards and network limits as keys (the management side): set,
// shown, refused with the reason. That a forward carries traffic is
// network.TestForwards (in private namespaces).
func TestProxyAndNetworkLimitKeys(t *testing.T) {
	e := newEnv(t)
	e.createBusybox("c1", "network.0.network=default")
	e.createBusybox("c2", "network.0.network=default")
	t.Cleanup(e.deleteNetworks)
	e.must("config", "set", "c1", "proxy.web=tcp:0.0.0.0:18080:80", "limits.network.egress=10Mbit")
	info := e.must("info", "c1")
	for _, want := range []string{"Port forward web", "tcp:0.0.0.0:18080:80", "egress 10Mbit"} {
		if !strings.Contains(info, want) {
			t.Errorf("info lacks %q:\n%s", want, info)
		}
	}
	if text := e.must("config", "show", "c1"); !strings.Contains(text, "[proxy]") || !strings.Contains(text, `egress = "10Mbit"`) {
		t.Errorf("config show:\n%s", text)
	}
	e.expectFail(2, "is already forwarded by container c1 (proxy.web", "config", "set", "c2", "proxy.www=tcp:127.0.0.1:18080:8080")
	e.must("config", "set", "c2", "proxy.www=udp:0.0.0.0:18080:8080")
	e.expectFail(2, `"sctp:0.0.0.0:1:1": protocol "sctp" is not tcp or udp`, "config", "set", "c2", "proxy.x=sctp:0.0.0.0:1:1")
	e.expectFail(2, "rates are in bits, not bytes", "config", "set", "c2", "limits.network.ingress=10MB")
	e.must("copy", "c1", "c1copy")
	if text := e.must("config", "show", "c1copy"); strings.Contains(text, "proxy") {
		t.Errorf("the copy took the host port too:\n%s", text)
	}
	e.must("config", "set", "c1", "proxy.web=", "limits.network.egress=0")
	if info := e.must("info", "c1"); strings.Contains(info, "Port forward") {
		t.Errorf("proxy.web= left the forward:\n%s", info)
	}
	for _, c := range []string{"c1", "c1copy", "c2"} {
		e.must("delete", c)
	}
}
