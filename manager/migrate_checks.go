package manager

import (
	"errors"
	"fmt"
	"strings"

	"lodge/internal/idmap"
	"lodge/migrate"
)

// The preflight's checks of what the two hosts are, not of what they hold:
// the target's CPU (the target checks the offer) and the target's CRIU (the
// source checks the answer), and the kinds of the target's refusals, which
// cross the host API so that lodge migrate exits as any command refused
// for the same reason.

// ErrIncompatible marks a migration refused because the target host cannot
// run what the source sends: its CPU lacks features the source's has, its
// CRIU or kernel lacks what the dump uses, its id pool differs, or its disk
// lacks space. The fix is another target, or to change that host.
var ErrIncompatible = errors.New("the target host cannot take the container")

func incompatible(format string, args ...any) error {
	return kindError{fmt.Errorf(format, args...), ErrIncompatible}
}

// checkOfferedCPU is the target's check of the source's CPU: a restored
// process goes on using the instructions it found when it started, and
// dies of SIGILL here at the first one this CPU lacks (migrate/cpu.go).
func checkOfferedCPU(name string, source migrate.CPU) error {
	if source.Arch == "" {
		return incompatible("the source did not say what its CPU offers (an older lodge there): update lodge on both hosts")
	}
	here, err := migrate.LocalCPU(true)
	if err != nil {
		return fmt.Errorf("this host's CPU: %w", err)
	}
	if source.Arch != here.Arch {
		return incompatible("%s runs on %s and this host is %s: CRIU restores a process only on the architecture it ran on", name, source.Arch, here.Arch)
	}
	if missing := migrate.MissingCPUFlags(source, here); len(missing) > 0 {
		return incompatible("the CPU here lacks %s, which the source's CPU has: processes of %s that use them would fault here; migrate it to a host with the same CPU model or a newer one",
			strings.Join(missing, ", "), name)
	}
	return nil
}

// checkTargetCRIU is the source's check of the target's answer: its CRIU
// must be as new as this one, and have what the dump of the tree uses
// (needs: migrate.DumpFeatures). Otherwise its restore would fail only
// after the container was frozen here.
func checkTargetCRIU(name string, version int, needs []string, ans MigrationAnswer) error {
	if ans.CRIU < version {
		return incompatible("CRIU on the target is %s, older than here (%s): it may not read this host's images; install the same CRIU on both hosts",
			migrate.VersionString(ans.CRIU), migrate.VersionString(version))
	}
	missing := migrate.MissingFeatures(needs, ans.CRIUFeatures)
	if len(missing) == 0 {
		return nil
	}
	var hints []string
	for _, f := range missing {
		hints = append(hints, migrate.FeatureHint(f))
	}
	return incompatible("CRIU on the target lacks %s, which the dump of %s uses: its restore there would fail; the target needs %s",
		strings.Join(missing, ", "), name, strings.Join(hints, ", and "))
}

// reserveRefused gives a refused reservation of range r its kind: taken
// here (in use), held by the name already (exists), or not a range of
// this host's pool (other idmap settings: incompatible).
func (m *Manager) reserveRefused(err error, r idmap.Range) error {
	switch pool := m.host.IDMap; {
	case errors.Is(err, idmap.ErrTaken):
		return kindError{err, ErrInUse}
	case errors.Is(err, idmap.ErrExists):
		return kindError{err, ErrExists}
	case pool.Size == 0 || r.HostID < pool.First || (r.HostID-pool.First)/pool.Size >= pool.Count ||
		(idmap.Pool{First: pool.First, Size: pool.Size}).Range((r.HostID-pool.First)/pool.Size) != r:
		return kindError{err, ErrIncompatible}
	}
	return err
}
