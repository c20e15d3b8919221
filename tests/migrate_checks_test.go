package tests

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"lodge/manager"
	"lodge/migrate"
)

// TestMigrateRefusedByHostChecks: the preflight's checks of the two hosts
// themselves, made to fail through LocalTarget's hooks (both roots are on
// this machine: same CPU, same CRIU). A CPU flag the target lacks (the
// offer says the source has one more) is refused by the target's
// preflight; a CRIU feature the target lacks (its answer says one less) is
// refused by the source, after the target reserved the name, which it then
// gives back. Each time the container keeps running on A, counting, and B
// has nothing of it. Then, without the hooks, the same container migrates:
// the checks pass between equal hosts.
func TestMigrateRefusedByHostChecks(t *testing.T) {
	p := newMigrationPair(t, "dir")
	p.a.createBusybox("hc", counterEvery100ms)
	p.a.must("start", "hc")
	waitCounterAbove(t, p.a, "hc", 2)
	refused := func(what string, target *manager.LocalTarget, want ...string) error {
		t.Helper()
		_, err := p.ma.Migrate(context.Background(), "hc", target, manager.MigrateOptions{}, nil)
		if !errors.Is(err, manager.ErrIncompatible) || !strings.Contains(err.Error(), "keeps running here") {
			t.Fatalf("%s: %v; want a refusal of kind incompatible", what, err)
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Fatalf("%s: %v; want it to say %q", what, err, w)
			}
		}
		t.Logf("%s: refused: %v", what, err)
		if i := p.a.info("hc"); i.State != "RUNNING" {
			t.Fatalf("%s: after the refusal hc is %s", what, i.State)
		}
		waitCounterAbove(t, p.a, "hc", readCounter(t, p.a, "hc"))
		gone(t, p.b, "hc")
		return err
	}

	// The source's CPU has a flag this one lacks (a made-up AVX-512 one,
	// which no CPU has), and one of the kernel's own (vmx: not compared).
	cpu := &manager.LocalTarget{M: p.mb, Offer: func(o *manager.MigrationOffer) {
		if o.CPU.Arch == "" || len(o.CPU.Flags) == 0 {
			t.Errorf("the offer says nothing of the source's CPU: %+v", o.CPU)
		}
		o.CPU.Flags = append(slices.Clone(o.CPU.Flags), "avx512_lodgetest", "vmx")
	}}
	here, err := migrate.LocalCPU(true)
	if err != nil {
		t.Fatal(err)
	}
	if here.Arch != "amd64" && here.Arch != "arm64" {
		t.Skipf("no CPU flags compared on %s", here.Arch)
	}
	if err := refused("a CPU flag the target lacks", cpu, "the CPU here lacks avx512_lodgetest, which"); strings.Contains(err.Error(), "vmx") {
		t.Errorf("the refusal names vmx, a flag of the kernel's: %v", err)
	}

	// The target's CRIU lacks the nftables network lock the dump uses.
	noLock := &manager.LocalTarget{M: p.mb, Answer: func(a *manager.MigrationAnswer) {
		if !slices.Contains(a.CRIUFeatures, migrate.FeatureNftablesLock) {
			t.Errorf("the target's answer lacks %s: %v", migrate.FeatureNftablesLock, a.CRIUFeatures)
		}
		a.CRIUFeatures = slices.DeleteFunc(a.CRIUFeatures, func(f string) bool { return f == migrate.FeatureNftablesLock })
	}}
	refused("a CRIU feature the target lacks", noLock, "CRIU on the target lacks network_lock_nftables", "the target keeps nothing of it")

	// Equal hosts: it goes.
	before := readCounter(t, p.a, "hc")
	migrateOnce(t, p.ma, p.mb, "hc")
	gone(t, p.a, "hc")
	if after := readCounter(t, p.b, "hc"); after < before {
		t.Fatalf("the counter went from %d to %d", before, after)
	}
	waitCounterAbove(t, p.b, "hc", readCounter(t, p.b, "hc"))
}
