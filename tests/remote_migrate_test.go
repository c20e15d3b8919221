package tests

import (
	"bufio"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// newMigrationHosts is two hosts with the same id pool (the [idmap] of
// h1's host config on both): a migration keeps the container's range.
func newMigrationHosts(t *testing.T) *twoHosts {
	t.Helper()
	needCRIU(t)
	hs := newTwoHosts(t)
	hs.h2.firstID = hs.h1.firstID
	hs.h2.setImages(sharedImages) // rewrites h2's host config with h1's pool
	return hs
}

// TestRemoteMigrateBusybox: lodge migrate over the host API, between two
// hosts (network namespaces, each with its lodge serve): a busybox whose
// init counts in memory goes h1 -> h2 -> h1 -> h2; every time the counter
// goes on, the output shows the downtime, the source keeps nothing and the
// target's serve logged the migration's calls. No NIC: the container has
// none (a bridged NIC across the two hosts is not tested here yet).
//
// Both hosts have the same id pool ([idmap] first and count) and mig's
// range is free on each: the target reserves the very range the container
// has on the source (docs/migration.md, "Id ranges"; a taken one is
// remapped: remote_migrate_remap_test.go).
func TestRemoteMigrateBusybox(t *testing.T) {
	needCRIU(t)
	hs := newMigrationHosts(t)
	h1, h2 := hs.h1, hs.h2
	hs.serveEachOther()

	h1.createBusybox("mig", counterEvery100ms, "limits.memory=64MiB")
	h1.must("start", "mig")
	waitCounterAbove(t, h1.env, "mig", 5)
	hosts := []*host{h1, h2}
	for round := range 3 {
		from, to := hosts[round%2], hosts[1-round%2]
		before := readCounter(t, from.env, "mig")
		args := []string{"migrate", "mig", to.name}
		asJSON := round == 2
		if asJSON {
			args = append(args, "--format", "json")
		}
		r := from.run(args...)
		if r.code != 0 {
			t.Fatalf("round %d: lodge migrate mig %s on %s: %s\n%s's serve:\n%s", round, to.name, from.name, r, to.name, to.serveLogs())
		}
		t.Logf("round %d, %s -> %s:\n%s%s", round, from.name, to.name, r.stderr, r.stdout)
		if !strings.Contains(r.stderr, "preflight of mig on the target") {
			t.Errorf("round %d: no progress on stderr: %q", round, r.stderr)
		}
		if asJSON {
			var res struct {
				Name     string `json:"name"`
				Downtime int64  `json:"downtime_ns"`
				Bytes    int64  `json:"bytes"`
				Phases   []struct {
					Name string `json:"name"`
				} `json:"phases"`
			}
			if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
				t.Fatalf("round %d: --format json: %v\n%s", round, err, r.stdout)
			}
			if res.Name != "mig" || res.Downtime <= 0 || res.Bytes <= 0 || len(res.Phases) == 0 {
				t.Errorf("round %d: the JSON result lacks the downtime, bytes or phases: %+v", round, res)
			}
		} else if !strings.Contains(r.stdout, "Migrated mig to "+to.name) || !strings.Contains(r.stdout, "downtime ") || !strings.Contains(r.stdout, "PHASE") {
			t.Errorf("round %d: the output does not show the downtime and phases:\n%s", round, r.stdout)
		}
		gone(t, from.env, "mig")
		i := to.info("mig")
		if i.State != "RUNNING" {
			t.Fatalf("round %d: after the migration mig is %s on %s", round, i.State, to.name)
		}
		inTargetCgroups(t, i.PID, to.cgroupName+"/mig")
		after := readCounter(t, to.env, "mig")
		if after < before {
			t.Fatalf("round %d: the counter went from %d to %d: the container was booted, not migrated", round, before, after)
		}
		waitCounterAbove(t, to.env, "mig", after)
		for _, path := range []string{"/1.0/migrations/mig ", "/1.0/migrations/mig/rootfs ", "/1.0/migrations/mig/checkpoint ", "/1.0/migrations/mig/restore ", "/1.0/migrations/mig/commit "} {
			// A request is logged once answered, on serve's stderr: wait for it.
			if !eventually(10*time.Second, func() bool { return strings.Contains(to.serveLogs(), "path="+path+"client="+from.name) }) {
				t.Errorf("round %d: %s's serve did not log %s from %s:\n%s", round, to.name, path, from.name, to.serveLogs())
			}
		}
	}
}

// TestRemoteMigrateWithNIC: a busybox with a NIC on a network both hosts
// have (the same name and subnet, their bridges joined into one L2
// segment) goes h1 -> h2 -> h1 with lodge migrate; every time the counter
// goes on, a container on h2 reaches its static address, and the NIC
// keeps its MAC and address. Its id range is free on h2 (remapping has
// its own tests: remote_migrate_remap_test.go).
func TestRemoteMigrateWithNIC(t *testing.T) {
	needCRIU(t)
	hs := newMigrationHosts(t)
	h1, h2 := hs.h1, hs.h2
	hs.segment(t, "seg", "10.77.0.0/24")
	hs.serveEachOther()

	h2.createBusybox("peer", "network.0.network=seg", "network.0.ipv4=10.77.0.20")
	h2.must("start", "peer")
	mig := []string{counterEvery100ms, "limits.memory=64MiB", "network.0.network=seg", "network.0.ipv4=10.77.0.10"}
	// A container holding h1's first range (peer holds h2's), so that mig
	// gets the second, free on both hosts.
	h1.createBusybox("hold")
	h1.createBusybox("mig", mig...)
	h1.must("start", "mig")
	waitCounterAbove(t, h1.env, "mig", 5)
	// The NIC as the container sees it (the host's end is named from the host's network tag).
	nic := func(nics []nicInfo) string {
		var s []string
		for _, n := range nics {
			s = append(s, n.Name+" "+n.HWAddr+" "+n.Address4)
		}
		return strings.Join(s, ", ")
	}
	onH1 := nic(h1.info("mig").NICs)
	reach := func(round int) {
		t.Helper()
		// -w: until one reply (a hang guard, not a timing assertion).
		if r := h2.run("exec", "peer", "--", "ping", "-c", "1", "-w", "30", "10.77.0.10"); r.code != 0 {
			t.Fatalf("round %d: peer on h2 cannot reach mig at 10.77.0.10: %s", round, r)
		}
	}
	reach(-1)
	hosts := []*host{h1, h2}
	for round := range 2 {
		from, to := hosts[round%2], hosts[1-round%2]
		before := readCounter(t, from.env, "mig")
		r := from.run("migrate", "mig", to.name)
		if r.code != 0 {
			t.Fatalf("round %d: lodge migrate mig %s on %s: %s\n%s's serve:\n%s", round, to.name, from.name, r, to.name, to.serveLogs())
		}
		t.Logf("round %d, %s -> %s:\n%s", round, from.name, to.name, r.stdout)
		if !strings.Contains(r.stdout, "downtime ") {
			t.Errorf("round %d: no downtime in:\n%s", round, r.stdout)
		}
		gone(t, from.env, "mig")
		i := to.info("mig")
		if i.State != "RUNNING" {
			t.Fatalf("round %d: after the migration mig is %s on %s", round, i.State, to.name)
		}
		if got := nic(i.NICs); got != onH1 || got == "" {
			t.Errorf("round %d: the NIC was %q on h1 and is %q on %s", round, onH1, got, to.name)
		}
		after := readCounter(t, to.env, "mig")
		if after < before {
			t.Fatalf("round %d: the counter went from %d to %d: the container was booted, not migrated", round, before, after)
		}
		waitCounterAbove(t, to.env, "mig", after)
		reach(round)
	}
}

// TestRemoteMigrateTargetKilled: the target's lodge serve is killed while
// the source dumps (after the tree was received there, before the
// restore): the migration fails, the container keeps running on the
// source, and the restarted serve (RecoverMigrations at its start) removes
// what the killed one had received, with the id range, so that the next
// migration goes through.
func TestRemoteMigrateTargetKilled(t *testing.T) {
	needCRIU(t)
	hs := newMigrationHosts(t)
	h1, h2 := hs.h1, hs.h2
	h2.startServe()
	hs.trust(h1, h2, "h2")
	h1.createBusybox("mig", counterEvery100ms, "limits.memory=64MiB")
	h1.must("start", "mig")
	waitCounterAbove(t, h1.env, "mig", 5)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute) // a hang guard
	defer cancel()
	cmd := h1.command(ctx, "migrate", "mig", "h2")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var said strings.Builder
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		said.WriteString(sc.Text() + "\n")
		if strings.HasPrefix(sc.Text(), "checkpointing mig") {
			h2.killServe()
		}
	}
	if err := cmd.Wait(); err == nil {
		t.Fatalf("the migration went through with the target's serve killed:\n%s", said.String())
	}
	t.Logf("lodge migrate with h2's serve killed during the dump:\n%s", said.String())
	if !strings.Contains(said.String(), "checkpointing mig") || !strings.Contains(said.String(), "it keeps running here") {
		t.Fatalf("the migration failed before the dump:\n%s", said.String())
	}
	if i := h1.info("mig"); i.State != "RUNNING" {
		t.Fatalf("after the failed migration mig is %s on h1", i.State)
	}
	waitCounterAbove(t, h1.env, "mig", readCounter(t, h1.env, "mig"))
	if left, _ := filepath.Glob(filepath.Join(h2.root, "tmp", "mig.create")); len(left) == 0 {
		t.Log("the killed serve left no staging directory (killed before it received the tree?)")
	}
	h2.startServe()
	gone(t, h2.env, "mig")
	before := readCounter(t, h1.env, "mig")
	h1.must("migrate", "mig", "h2")
	gone(t, h1.env, "mig")
	if after := readCounter(t, h2.env, "mig"); after < before {
		t.Fatalf("the counter went from %d to %d", before, after)
	}
}
