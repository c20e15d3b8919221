package manager

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"lodge/config"
	"lodge/internal/bootorder"
)

// bootConfigs reads every container's configuration for the boot order.
// A container whose file cannot be read is in broken, with the reason: it
// is still a container others may name.
func (m *Manager) bootConfigs() (cfgs map[string]*config.Container, broken map[string]error, err error) {
	names, err := m.store.Names()
	if err != nil {
		return nil, nil, err
	}
	cfgs, broken = map[string]*config.Container{}, map[string]error{}
	for _, name := range names {
		cfg, err := m.loadConfig(name)
		if err != nil {
			broken[name] = err
			continue
		}
		cfgs[name] = cfg
	}
	return cfgs, broken, nil
}

// bootGraph is the boot.after graph of every container here, with override
// standing in for container name's list (a change being checked).
func (m *Manager) bootGraph(override map[string][]string) (*bootorder.Graph, error) {
	cfgs, broken, err := m.bootConfigs()
	if err != nil {
		return nil, err
	}
	return graphOf(cfgs, broken, override), nil
}

func graphOf(cfgs map[string]*config.Container, broken map[string]error, override map[string][]string) *bootorder.Graph {
	after := map[string][]string{}
	for name, cfg := range cfgs {
		after[name] = cfg.Boot.After
	}
	for name := range broken {
		after[name] = nil
	}
	for name, list := range override {
		after[name] = list
	}
	return bootorder.New(after)
}

// checkBootAfter refuses a boot.after list of container name that names a
// container that does not exist, or makes a cycle. An unchanged list
// passes: a container's other keys can be set while a container its list
// names is gone (deleted with --force; autostart says so). A changed list
// that passes is returned with the boot-order lock held: call unlock once
// the configuration is saved, so that no other change is checked against
// the lists as they were before this one (store.LockBootOrder).
func (m *Manager) checkBootAfter(ctx context.Context, name string, old []string, cfg *config.Container) (unlock func(), err error) {
	if slices.Equal(old, cfg.Boot.After) {
		return func() {}, nil
	}
	lock, err := m.store.LockBootOrder(ctx)
	if err != nil {
		return nil, err
	}
	if err := m.checkBootAfterLocked(name, old, cfg); err != nil {
		lock.Unlock()
		return nil, err
	}
	return lock.Unlock, nil
}

func (m *Manager) checkBootAfterLocked(name string, old []string, cfg *config.Container) error {
	g, err := m.bootGraph(map[string][]string{name: cfg.Boot.After})
	if err != nil {
		return err
	}
	for _, missing := range g.Unknown() {
		if missing.Container == name && !slices.Contains(old, missing.Name) {
			return invalid(fmt.Errorf("boot.after: %q is not a container here; create it first, or leave it out", missing.Name))
		}
	}
	if c := g.Cycle(); c != nil {
		return invalid(fmt.Errorf("boot.after: %q would make a cycle, %s (each starts after the next), so none of them could start first; take one of these names out of its container's boot.after (lodge config show NAME shows it)",
			strings.Join(cfg.Boot.After, " "), bootorder.FormatCycle(rotateTo(c, name))))
	}
	return nil
}

// rotateTo makes cycle (first name repeated last) begin at name, if it is
// in it: the container being changed reads best first.
func rotateTo(cycle []string, name string) []string {
	i := slices.Index(cycle, name)
	if i <= 0 {
		return cycle
	}
	ring := cycle[:len(cycle)-1]
	out := append(slices.Clone(ring[i:]), ring[:i]...)
	return append(out, name)
}

// refuseDependents refuses to delete container name while others name it
// in boot.after (delete --force skips this).
func (m *Manager) refuseDependents(name string) error {
	g, err := m.bootGraph(nil)
	if err != nil {
		return err
	}
	deps := g.Dependents(name)
	if len(deps) == 0 {
		return nil
	}
	which := "which start after it"
	if len(deps) == 1 {
		which = "which starts after it"
	}
	return kindError{fmt.Errorf("container %s is named in boot.after of %s, %s; take it out there first (lodge config set %s boot.after=...), or delete with --force (lodge autostart then skips them, saying why, until their boot.after is fixed)",
		name, strings.Join(deps, ", "), which, deps[0]), ErrInUse}
}
