package config

import (
	"maps"
	"slices"
	"time"
)

// CurrentVersion is the container config format this lodge writes. Bump it
// only together with an entry in containerMigrations (a test insists).
const CurrentVersion = 1

// Default values, named so docs, Default and the validators agree.
const (
	defaultInitPath    = "/sbin/init"
	defaultStopTimeout = Duration(30 * time.Second)
	defaultShift       = ShiftAuto
	// DefaultPids is limits.pids of a container that does not set it. It
	// stops a fork bomb (or a runaway thread pool) well before the host's
	// pid space, and is far above what a system container uses: a booted
	// Debian with systemd runs about 30 tasks, a busy application server a
	// few hundred. Hosts change it with [defaults] "limits.pids" in
	// lodge.toml; a container sets limits.pids = 0 for no limit.
	DefaultPids = 2048
)

// Rootfs.Shift values: how container ids are mapped onto the root
// filesystem's files, which keep their natural ids 0..65535 on disk.
const (
	ShiftAuto  = "auto"  // an idmapped mount, or a chown shift where the filesystem cannot idmap
	ShiftIDMap = "idmap" // an idmapped mount, or fail to start
	ShiftChown = "chown" // always chown the files into the container's id range
)

// Container is a container's whole configuration, stored in
// containers/NAME/config.toml. The documentation of each key, for users, is
// in the key registry (keys.go).
//
// Numeric fields use omitzero because the TOML encoder's omitempty does not
// skip zero numbers; zero means "not set" there. Tables use omitempty so a
// saved file shows only what is set. limits.pids is the exception: its
// default is a limit, so its 0 ("no limit") is written out, and the
// [limits] table with it.
type Container struct {
	Version  int      `toml:"version"`
	Source   Source   `toml:"source,omitempty"`
	Limits   Limits   `toml:"limits"`
	Init     Init     `toml:"init,omitempty"`
	Rootfs   Rootfs   `toml:"rootfs,omitempty"`
	LXCFS    LXCFS    `toml:"lxcfs"`
	Security Security `toml:"security,omitempty"`
	Boot     Boot     `toml:"boot,omitempty"`
	// Networks are the container's NICs, [[network]] tables in the file,
	// network.N.KEY on the command line (nic.go).
	Networks []NIC `toml:"network,omitempty"`
	// Proxies are the port forwards, NAME = "PROTO:LISTEN:HOSTPORT:CONTAINERPORT"
	// ([proxy] in the file, proxy.NAME on the command line; proxy.go).
	Proxies map[string]string `toml:"proxy,omitempty"`
}

// Source records how the container was made. `lodge create` sets it; users
// can read it but not set it.
type Source struct {
	Template string            `toml:"template,omitempty"` // e.g. "busybox", "debian"
	Image    string            `toml:"image,omitempty"`    // image alias when created from an image
	Options  map[string]string `toml:"options,omitempty"`  // template options, e.g. release=bookworm
	Created  time.Time         `toml:"created,omitempty"`
}

// Limits are the container's resource limits. Zero means "no limit"; all
// are unset by default but Pids.
type Limits struct {
	// Memory caps RAM and page cache of all processes together, in bytes.
	Memory Size `toml:"memory,omitzero"`

	// Swap is how much swap the container may use on top of Memory. 0 sets
	// no swap limit: the container may swap as much as the host allows
	// (memory.swap.max stays "max"). It needs Memory, because cgroup v1 can
	// only limit memory and swap together (memory.memsw = Memory + Swap).
	Swap Size `toml:"swap,omitzero"`

	// CPU is a CPU time quota in CPUs, e.g. 1.5.
	CPU float64 `toml:"cpu,omitzero"`

	// Cpuset lists the CPUs the container may run on, e.g. "0-1" or "0,2";
	// "" means all.
	Cpuset string `toml:"cpuset,omitempty"`

	// Pids caps the number of tasks (processes and threads); DefaultPids
	// unless set, 0 for no limit.
	Pids int64 `toml:"pids"`

	// Disk caps the space the container's root filesystem may use, in
	// bytes, enforced by its storage backend (a backend that cannot enforce
	// it refuses the setting; it is never silently ignored). 0: no limit.
	Disk Size `toml:"disk,omitzero"`

	// Network caps the bandwidth of each bridged NIC, on the host's side.
	Network NetworkLimits `toml:"network,omitempty"`
}

// NetworkLimits are per-NIC bandwidth limits as the container sees them;
// 0 is none. They change at once on a running container.
type NetworkLimits struct {
	Ingress BitRate `toml:"ingress,omitzero"` // what the container receives
	Egress  BitRate `toml:"egress,omitzero"`  // what the container sends
}

// Init says how the container's init is started and stopped.
type Init struct {
	Command     []string `toml:"command,omitempty"`
	StopSignal  string   `toml:"stop_signal,omitempty"` // "" = chosen from the init
	StopTimeout Duration `toml:"stop_timeout,omitzero"`
}

// Boot says how the container takes part in a host's boot and shutdown:
// `lodge autostart` and `lodge shutdown-all` (docs/operations.md).
type Boot struct {
	// Autostart: lodge autostart starts it.
	Autostart bool `toml:"autostart,omitempty"`
	// After names containers that must be started, and ready, before this
	// one starts, and that stop only after it has stopped.
	After []string `toml:"after,omitempty"`
	// ReadyCommand, run in the container until it exits 0, says it is
	// ready; empty: ready when its init says so.
	ReadyCommand []string `toml:"ready_command,omitempty"`
	// ReadyTimeout bounds the wait for readiness; nil: DefaultReadyTimeout.
	// A pointer, because the TOML encoder's omitempty counts a number in a
	// table as a value: an int field would write an empty [boot] table
	// into every container's file.
	ReadyTimeout *Duration `toml:"ready_timeout,omitempty"`
	// HostShutdown is what shutdown-all does with it: HostShutdownStop
	// ("" too) or HostShutdownCheckpoint.
	HostShutdown string `toml:"host_shutdown,omitempty"`
}

// Boot.HostShutdown values.
const (
	HostShutdownStop       = "stop"
	HostShutdownCheckpoint = "checkpoint"
)

// DefaultReadyTimeout is how long lodge autostart waits for a container
// to be ready unless boot.ready_timeout says otherwise: a Debian with
// systemd reaches "running" in a few seconds, but a host booting dozens of
// containers at once is slow.
const DefaultReadyTimeout = Duration(2 * time.Minute)

// ReadyWithin is the readiness timeout in force.
func (b Boot) ReadyWithin() time.Duration {
	if b.ReadyTimeout == nil {
		return DefaultReadyTimeout.Std()
	}
	return b.ReadyTimeout.Std()
}

// CheckpointAtShutdown tells whether shutdown-all checkpoints the
// container instead of stopping it.
func (b Boot) CheckpointAtShutdown() bool { return b.HostShutdown == HostShutdownCheckpoint }

// Rootfs holds settings of the container's root filesystem.
type Rootfs struct {
	Shift string `toml:"shift,omitempty"` // ShiftAuto, ShiftIDMap or ShiftChown
}

// LXCFS says how the container's /proc and /sys views (lodge lxcfs) behave.
type LXCFS struct {
	// Enabled mounts the views over /proc/meminfo and friends at start.
	Enabled bool `toml:"enabled"`
	// CPUQuotaView counts the CPU quota (rounded up) instead of the cpuset.
	CPUQuotaView bool `toml:"cpu_quota_view,omitempty"`
}

// Security relaxes or tightens the protections every container gets
// (docs/security.md says what they are).
type Security struct {
	// Nesting lets the container run containers of its own.
	Nesting bool `toml:"nesting,omitempty"`
	// Syscalls changes the default seccomp filter.
	Syscalls Syscalls `toml:"syscalls,omitempty"`
}

// Syscalls names system calls to deny on top of, or allow out of, the
// default seccomp filter.
type Syscalls struct {
	Deny  []string `toml:"deny,omitempty"`
	Allow []string `toml:"allow,omitempty"`
}

// Default returns the configuration of a container with nothing set. Load
// decodes a file on top of it, so keys missing from the file keep these values.
func Default() *Container {
	return &Container{
		Version: CurrentVersion,
		Init: Init{
			Command:     []string{defaultInitPath},
			StopTimeout: defaultStopTimeout,
		},
		Limits: Limits{Pids: DefaultPids},
		Rootfs: Rootfs{Shift: defaultShift},
		LXCFS:  LXCFS{Enabled: true},
	}
}

// Clone returns a deep copy, so the copy can be changed without touching c.
func (c *Container) Clone() *Container {
	clone := *c
	clone.Source.Options = maps.Clone(c.Source.Options)
	clone.Init.Command = slices.Clone(c.Init.Command)
	clone.Security.Syscalls.Deny = slices.Clone(c.Security.Syscalls.Deny)
	clone.Security.Syscalls.Allow = slices.Clone(c.Security.Syscalls.Allow)
	clone.Boot.After = slices.Clone(c.Boot.After)
	clone.Boot.ReadyCommand = slices.Clone(c.Boot.ReadyCommand)
	if c.Boot.ReadyTimeout != nil {
		timeout := *c.Boot.ReadyTimeout
		clone.Boot.ReadyTimeout = &timeout
	}
	clone.Networks = slices.Clone(c.Networks) // NIC holds no references
	clone.Proxies = maps.Clone(c.Proxies)
	return &clone
}
