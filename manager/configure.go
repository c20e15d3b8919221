package manager

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"

	"lodge/config"
	"lodge/internal/cgroup"
	"lodge/internal/events"
	"lodge/manager/monitor"
)

// ConfigText returns the container's configuration file as it is on disk.
func (m *Manager) ConfigText(name string) ([]byte, error) {
	if err := m.store.MustExist(name); err != nil {
		return nil, err
	}
	return os.ReadFile(m.store.ConfigPath(name))
}

// SetResult says what a configuration change did.
type SetResult struct {
	AppliedLive bool // limits were applied to the running container
	NeedRestart bool // the container runs; other keys take effect at its next start
}

// ConfigSet changes configuration keys ("key=value"). All are checked before
// any is saved. Limits of a running container are applied at once.
func (m *Manager) ConfigSet(ctx context.Context, name string, assignments []string) (SetResult, error) {
	lock, err := m.store.Lock(ctx, name)
	if err != nil {
		return SetResult{}, err
	}
	defer lock.Unlock()
	cfg, err := m.loadConfig(name)
	if err != nil {
		return SetResult{}, err
	}
	oldAfter := slices.Clone(cfg.Boot.After)
	if err := applyAssignments(cfg, assignments, "set"); err != nil {
		return SetResult{}, err
	}
	if err := cfg.ValidateOn(m.hostFacts()); err != nil {
		return SetResult{}, invalid(err)
	}
	unlockBootOrder, err := m.checkBootAfter(ctx, name, oldAfter, cfg)
	if err != nil {
		return SetResult{}, err
	}
	defer unlockBootOrder()
	return m.applyAndSave(ctx, name, cfg)
}

// ConfigReplace validates new configuration text (from `lodge config edit`) and
// saves it.
func (m *Manager) ConfigReplace(ctx context.Context, name string, text []byte) (SetResult, error) {
	lock, err := m.store.Lock(ctx, name)
	if err != nil {
		return SetResult{}, err
	}
	defer lock.Unlock()
	cfg, err := config.Parse(m.store.ConfigPath(name), text)
	if err != nil {
		return SetResult{}, invalid(err)
	}
	if err := cfg.ValidateOn(m.hostFacts()); err != nil {
		return SetResult{}, invalid(fmt.Errorf("%s: %w", m.store.ConfigPath(name), err))
	}
	old, err := config.Load(m.store.ConfigPath(name))
	if err == nil && !reflect.DeepEqual(old.Source, cfg.Source) {
		return SetResult{}, invalid(errors.New("the [source] table records how the container was made and cannot be changed"))
	}
	var oldAfter []string
	if old != nil {
		oldAfter = old.Boot.After
	}
	unlockBootOrder, err := m.checkBootAfter(ctx, name, oldAfter, cfg)
	if err != nil {
		return SetResult{}, err
	}
	defer unlockBootOrder()
	return m.applyAndSave(ctx, name, cfg)
}

// applyAndSave checks and completes the NICs of a changed configuration,
// applies its disk limit, and saves it, holding the networks' lock until
// the file is written (no other container takes a static address meanwhile).
func (m *Manager) applyAndSave(ctx context.Context, name string, cfg *config.Container) (SetResult, error) {
	unlockNetworks, err := m.prepareNICs(ctx, name, cfg)
	if err != nil {
		return SetResult{}, err
	}
	defer unlockNetworks()
	if err := m.applyDiskChange(ctx, name, cfg); err != nil {
		return SetResult{}, err
	}
	return m.saveConfig(name, cfg)
}

func (m *Manager) saveConfig(name string, cfg *config.Container) (SetResult, error) {
	old, _ := config.Load(m.store.ConfigPath(name))
	if err := cfg.Save(m.store.ConfigPath(name)); err != nil {
		return SetResult{}, err
	}
	m.emit(name, events.Event{Type: events.ConfigChanged, Keys: changedKeys(old, cfg)})
	st, err := m.liveState(name)
	if err != nil || st == nil {
		return SetResult{}, err
	}
	if err := cgroup.Open(st.Cgroups).Apply(monitor.CgroupLimits(cfg)); err != nil {
		return SetResult{NeedRestart: true}, fmt.Errorf("saved, but applying the limits to the running container failed (they apply at the next start): %w", err)
	}
	if err := m.applyNetworkLive(name, old, cfg); err != nil {
		return SetResult{AppliedLive: true, NeedRestart: true}, fmt.Errorf("saved, but applying the network limits or port forwards to the running container failed (they apply at the next start): %w", err)
	}
	return SetResult{AppliedLive: true, NeedRestart: true}, nil
}

// applyDiskChange sets a changed limits.disk on the container's root
// filesystem before the configuration is saved: a backend that cannot
// enforce it refuses, and then nothing changes.
func (m *Manager) applyDiskChange(ctx context.Context, name string, cfg *config.Container) error {
	old, err := config.Load(m.store.ConfigPath(name))
	if err == nil && old.Limits.Disk == cfg.Limits.Disk {
		return nil
	}
	if err := m.prepareStorage(name); err != nil {
		return err
	}
	st, err := m.liveState(name)
	if err != nil {
		return err
	}
	if st != nil {
		return m.setRunningDiskLimit(ctx, name, cfg.Limits.Disk)
	}
	return m.setDiskLimit(ctx, m.store.ContainerDir(name), cfg.Limits.Disk)
}
