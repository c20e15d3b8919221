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
// and CLI's unit tests (its wire form and exit status). Then the source's
// own preflight refuses a container holding an io_uring instance (exit 4,
// blocked). Each time the container keeps running on h1 and h2 has nothing
// of it.
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

	// The source's own preflight: a process holding an io_uring instance,
	// which CRIU cannot dump, is named before anything is frozen or sent.
	h1.createBusybox("ur", "security.syscalls.allow=io_uring_setup")
	h1.must("start", "ur")
	h1.installProbe("ur", buildProbe(t))
	h1.must("exec", "ur", "--", "sh", "-c", "/lodge-probe ring >/ring.out 2>&1 </dev/null &")
	waitUntil(t, "the probe to hold its ring", func() bool {
		return strings.Contains(h1.run("exec", "ur", "--", "cat", "/ring.out").stdout, "ring ok")
	})
	r := h1.run("migrate", "ur", "h2")
	if r.code != 4 || !strings.Contains(r.stderr, "(lodge-probe): io_uring instance (fd ") || !strings.Contains(r.stderr, "it keeps running here") {
		t.Fatalf("an io_uring holder: %s; want exit 4 naming the ring", r)
	}
	t.Logf("an io_uring holder: exit %d: %s", r.code, strings.TrimSpace(r.stderr))
	if i := h1.info("ur"); i.State != "RUNNING" {
		t.Fatalf("after the refusal ur is %s on h1, want RUNNING (not frozen)", i.State)
	}
	h1.must("exec", "ur", "--", "true")
	gone(t, h2.env, "ur")
}
