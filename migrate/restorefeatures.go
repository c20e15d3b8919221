package migrate

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sync"
)

// A migration's restore runs another CRIU on another kernel than the dump.
// Besides the version (a CRIU reads the images of older ones, not always
// of newer ones), a restore of lodge's dumps needs what the dump used: its
// network lock and the tree's time namespace. A target without them fails
// its restore only after the source froze the container; the source asks
// for them first (the target's preflight answers which it has).

// Features a restore may need, named as "criu check --feature NAME" takes them.
const (
	// FeatureNftablesLock: CRIU locks the network with nftables (Dump
	// and Restore ask for it: hosts without iptables have nothing else);
	// a CRIU built without libnftables cannot.
	FeatureNftablesLock = "network_lock_nftables"
	// FeatureTimens: the kernel has time namespaces (CONFIG_TIME_NS),
	// which lodge's containers have one of (their clocks' offsets).
	FeatureTimens = "timens"
)

// RestoreFeatures are the features a target's preflight reports.
var RestoreFeatures = []string{FeatureNftablesLock, FeatureTimens}

// FeatureHint says what gives a host a missing feature.
func FeatureHint(name string) string {
	switch name {
	case FeatureNftablesLock:
		return "a CRIU built with nftables (libnftables), as make deps installs"
	case FeatureTimens:
		return "a kernel with time namespaces (CONFIG_TIME_NS)"
	}
	return "the same CRIU and kernel features as the source"
}

// DumpFeatures are the RestoreFeatures a dump of the tree whose init is
// host pid uses: the nftables network lock always (Dump's), a time
// namespace if init has one of its own.
func DumpFeatures(pid int) ([]string, error) {
	needs := []string{FeatureNftablesLock}
	own, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/time", pid))
	if err != nil {
		return nil, fmt.Errorf("the time namespace of %d: %w", pid, err)
	}
	host, err := os.Readlink("/proc/self/ns/time")
	if err != nil {
		return nil, err
	}
	if own != host {
		needs = append(needs, FeatureTimens)
	}
	return needs, nil
}

// MissingFeatures are those of needs that has lacks.
func MissingFeatures(needs, has []string) []string {
	var missing []string
	for _, n := range needs {
		if !slices.Contains(has, n) {
			missing = append(missing, n)
		}
	}
	return missing
}

// featuresFound caches the features a CRIU binary has (path NUL feature):
// only those it has, as criuFound caches only a CRIU that passed, so that
// a fix (another CRIU, a kernel setting) shows on the next check.
var featuresFound sync.Map

// HasFeatures runs "criu check --feature NAME" for each of names, all at
// once, and returns those that CRIU has on this kernel, in names' order. A
// check that fails, also for a name this CRIU does not know (an older
// one), counts as lacking it.
func (c *CRIU) HasFeatures(ctx context.Context, names []string) []string {
	ctx, cancel := context.WithTimeout(ctx, swrkTimeout)
	defer cancel()
	ok := make([]bool, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		key := c.Path + "\x00" + name
		if _, found := featuresFound.Load(key); found {
			ok[i] = true
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if exec.CommandContext(ctx, c.Path, "check", "--feature", name).Run() == nil {
				ok[i] = true
				featuresFound.Store(key, true)
			}
		}()
	}
	wg.Wait()
	var has []string
	for i, name := range names {
		if ok[i] {
			has = append(has, name)
		}
	}
	return has
}
