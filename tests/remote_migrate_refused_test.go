package tests

import (
	"strings"
	"testing"
)

// TestRemoteMigrateRefusedExitStatus: the target's refusals cross the host
// API with their kind, and lodge migrate exits as a local command refused
// for the same reason: the name taken on h2 exits 4 (exists), the NIC's
// network missing there exits 3 (not found). The range taken (exit 4) is
// in TestRemoteMigrateWithNIC, the CPU and CRIU refusals (exit 6, kind
// incompatible) in TestMigrateRefusedByHostChecks (the kind) and the API's
// and CLI's unit tests (its wire form and exit status). Each time the
// container keeps running on h1 and h2 has nothing of it.
func TestRemoteMigrateRefusedExitStatus(t *testing.T) {
	needCRIU(t)
	hs := newMigrationHosts(t)
	h1, h2 := hs.h1, hs.h2
	h1.must("network", "create", "seg", "--subnet", "10.78.0.0/24")
	h2.startServe()
	hs.trust(h1, h2, "h2")
	h1.createBusybox("mig", counterEvery100ms, "network.0.network=seg", "network.0.ipv4=10.78.0.10")
	h1.must("start", "mig")
	waitCounterAbove(t, h1.env, "mig", 2)
	refused := func(what string, code int, says string) {
		t.Helper()
		r := h1.run("migrate", "mig", "h2")
		if r.code != code || !strings.Contains(r.stderr, says) || !strings.Contains(r.stderr, "it keeps running here") {
			t.Fatalf("%s: %s; want exit %d saying %q", what, r, code, says)
		}
		t.Logf("%s: exit %d: %s", what, r.code, strings.TrimSpace(r.stderr))
		waitCounterAbove(t, h1.env, "mig", readCounter(t, h1.env, "mig"))
	}
	h2.createBusybox("mig")
	refused("the name taken on h2", 4, `container "mig" already exists`)
	h2.must("delete", "mig")
	refused("the network missing on h2", 3, "the network seg of mig does not exist here")
	gone(t, h2.env, "mig")
}
