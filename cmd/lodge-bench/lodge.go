package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"lodge/config"
	"lodge/internal/cgroup"
)

// lodgeRuntime drives the lodge binary under test with its own root and host
// config: a unique cgroup base below its own cgroup and an id range far from
// real containers.
type lodgeRuntime struct {
	bin        string
	root       string
	hostConfig string // path of the host config file (env LODGE_HOST_CONFIG)
	configText string
	cgroupName string
	backend    string // storage.backend in the host config; "" for auto
	run        *runner
}

// lodgeIDFirst is the first host id of the benchmark's lodge containers.
const lodgeIDFirst = 200000000

func newLodge(bin, dir, cgroupName string) (*lodgeRuntime, error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("lodge binary: %w (build it with make build)", err)
	}
	l := &lodgeRuntime{
		bin:        bin,
		root:       filepath.Join(dir, "lodge"),
		hostConfig: filepath.Join(dir, "lodge.toml"),
		cgroupName: cgroupName,
	}
	// The base: cgroupName below the benchmark's own cgroup on every hierarchy.
	parents, err := cgroup.OwnParents(cgroupName)
	if err != nil {
		return nil, err
	}
	l.configText = fmt.Sprintf("version = 1\n\n[idmap]\nfirst = %d\n\n[images]\ndir = %q\n\n", lodgeIDFirst, benchImages) +
		config.CgroupTOML("/"+cgroupName, parents)
	if err := os.WriteFile(l.hostConfig, []byte(l.configText), 0o644); err != nil {
		return nil, err
	}
	return l, nil
}

// onBackend returns a lodge with its own root and a host config that is
// l's plus `[storage] backend = backend`; its commands run with that host
// config in LODGE_HOST_CONFIG. Container names share l's cgroup base, so
// they must differ from l's.
func (l *lodgeRuntime) onBackend(backend, root, hostConfig string) (*lodgeRuntime, error) {
	o := *l
	o.root, o.hostConfig, o.backend = root, hostConfig, backend
	o.configText = strings.TrimRight(l.configText, "\n") + fmt.Sprintf("\n\n[storage]\nbackend = %q\n", backend)
	if err := os.WriteFile(hostConfig, []byte(o.configText), 0o644); err != nil {
		return nil, err
	}
	o.run = l.run.withEnv(config.HostConfigEnv + "=" + hostConfig)
	return &o, nil
}

// display is argv as a user would type it, with the host config when it is
// not the benchmark's default one.
func (l *lodgeRuntime) display(argv []string) string {
	line := l.run.display(argv)
	if l.backend != "" {
		line = config.HostConfigEnv + "=" + l.run.shorten(l.hostConfig) + " " + line
	}
	return line
}

func (l *lodgeRuntime) Name() string           { return "lodge" }
func (l *lodgeRuntime) Container(i int) string { return fmt.Sprintf("b%d", i) }

func (l *lodgeRuntime) argv(args ...string) []string {
	return append([]string{l.bin, "--root", l.root}, args...)
}

func (l *lodgeRuntime) StartCmd(name string) []string { return l.argv("start", name) }

func (l *lodgeRuntime) StopCmd(name string, force bool) []string {
	if force {
		return l.argv("stop", "--force", name)
	}
	return l.argv("stop", name)
}

func (l *lodgeRuntime) ExecCmd(name string, command ...string) []string {
	return append(l.argv("exec", name, "--"), command...)
}

func (l *lodgeRuntime) FreezeCmd(name string) []string   { return l.argv("freeze", name) }
func (l *lodgeRuntime) UnfreezeCmd(name string) []string { return l.argv("unfreeze", name) }

func (l *lodgeRuntime) VersionCmd() []string { return []string{l.bin, "version"} }

func (l *lodgeRuntime) CreateCmd(name string) []string {
	return l.argv("create", name, "--template", "busybox")
}

func (l *lodgeRuntime) Create(name string) error {
	_, err := l.run.output(l.CreateCmd(name)...)
	return err
}

// lodgeInfo is the part of `lodge info --format json` the benchmark reads.
type lodgeInfo struct {
	State      string `json:"state"`
	PID        int    `json:"pid"`
	MonitorPID int    `json:"monitor_pid"`
	RootfsMode string `json:"rootfs_mode"`
	IDMap      string `json:"idmap"`
}

func (l *lodgeRuntime) ProcsCmd(name string) []string {
	return l.argv("info", name, "--format", "json")
}

func (l *lodgeRuntime) info(name string) (lodgeInfo, error) {
	var info lodgeInfo
	out, err := l.run.output(l.ProcsCmd(name)...)
	if err != nil {
		return info, err
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		return info, fmt.Errorf("lodge info %s: %w", name, err)
	}
	return info, nil
}

func (l *lodgeRuntime) Procs(name string) (procs, error) {
	info, err := l.info(name)
	if err != nil {
		return procs{}, err
	}
	return procs{Init: info.PID, Monitor: info.MonitorPID}, nil
}

func (l *lodgeRuntime) Destroy(name string) error {
	_, err := l.run.output(l.argv("delete", "--force", name)...)
	return err
}

// cleanup deletes every container in the benchmark's lodge root.
func (l *lodgeRuntime) cleanup() error {
	out, err := l.run.output(l.argv("list", "--format", "json")...)
	if err != nil {
		return err
	}
	var list []struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return fmt.Errorf("lodge list: %w", err)
	}
	var errs []error
	for _, c := range list {
		errs = append(errs, l.Destroy(c.Name))
	}
	// The views server outlives containers; it goes with the root.
	if _, err := l.run.output(l.argv("lxcfs", "stop")...); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// version is `lodge version`.
func (l *lodgeRuntime) version() string {
	out, err := l.run.output(l.VersionCmd()...)
	if err != nil {
		return "unknown"
	}
	return trimOutput(out)
}
