package config

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Key is one configuration key as users see it in `lodge create -c
// key=value`, `lodge config set`, `lodge config show` and the README.
type Key struct {
	Name     string // dotted TOML name, e.g. "limits.memory"
	Doc      string // what it does, units and default; for README and --help
	Example  string // a valid value, e.g. "512MiB"
	ReadOnly bool   // source.* keys: shown, never set by users
	nic      bool   // a key with a placeholder: network.N.* (nic.go, N is a NIC's index) or proxy.NAME (proxy.go)

	set   func(*Container, string) error // parses a value into the container
	get   func(*Container) string        // formats the value so set accepts it back
	check func(*Container) error         // validates the value; nil if any value is fine
}

// Default returns the key's value in a container with nothing set.
func (k Key) Default() string { return k.get(Default()) }

// keyRegistry lists every key, sorted by name; each key's documentation,
// parser, formatter and validator sit together so they stay in step.
var keyRegistry = []Key{
	{
		Name:    "boot.after",
		Doc:     "Containers that `lodge autostart` starts, and waits for until they are ready, before this one (even if they are not autostart themselves), as a word list of names; `lodge shutdown-all` stops this one before them. If one of them fails, this one is skipped, and says why. `config set` refuses a name that is not a container here and a cycle (a -> b -> a); `lodge delete` refuses a container others name here, unless --force. See docs/operations.md.",
		Example: "db cache",
		set:     func(c *Container, v string) error { return setWords(&c.Boot.After, v) },
		get:     func(c *Container) string { return joinWords(c.Boot.After) },
		check:   checkBootAfter,
	},
	{
		Name:    "boot.autostart",
		Doc:     "Whether `lodge autostart` (run by lodge's boot unit when the host boots) starts the container, after those it names in boot.after.",
		Example: "true",
		set:     func(c *Container, v string) error { return setBool(&c.Boot.Autostart, v) },
		get:     func(c *Container) string { return strconv.FormatBool(c.Boot.Autostart) },
		check:   func(*Container) error { return nil }, // any boolean is fine
	},
	{
		Name:    "boot.host_shutdown",
		Doc:     "What `lodge shutdown-all` (run when the host shuts down) does with the running container: stop (its stop signal, killed only if it outlasts its init.stop_timeout or the shutdown's budget), or checkpoint (CRIU saves its processes and stops it; the next `lodge autostart` restores them, whether or not the container is autostart, and boots it afresh, saying so, if the restore fails; a checkpoint that fails at shutdown stops it cleanly instead).",
		Example: HostShutdownCheckpoint,
		set:     func(c *Container, v string) error { c.Boot.HostShutdown = strings.TrimSpace(v); return nil },
		get: func(c *Container) string {
			if c.Boot.HostShutdown == "" {
				return HostShutdownStop
			}
			return c.Boot.HostShutdown
		},
		check: checkHostShutdown,
	},
	{
		Name:    "boot.ready_command",
		Doc:     "A command that `lodge autostart` runs in the container (as `lodge exec` would) until it exits 0, to know the container is ready for those that start after it; a word list with shell-like quoting. Empty: ready when its init says so (systemd: `systemctl is-system-running` says running or degraded; other inits: once started).",
		Example: "/bin/sh -c 'test -S /run/postgresql/.s.PGSQL.5432'",
		set:     func(c *Container, v string) error { return setWords(&c.Boot.ReadyCommand, v) },
		get:     func(c *Container) string { return joinWords(c.Boot.ReadyCommand) },
		check:   checkReadyCommand,
	},
	{
		Name:    "boot.ready_timeout",
		Doc:     "How long `lodge autostart` waits for the container to be ready (boot.ready_command, or its init) before it calls it failed and skips those that start after it, e.g. 30s or 5m.",
		Example: "5m",
		set:     setReadyTimeout,
		get:     func(c *Container) string { return Duration(c.Boot.ReadyWithin()).String() },
		check:   checkReadyTimeout,
	},
	{
		Name:    "init.command",
		Doc:     "The init program and its arguments, started as process 1 of the container. A word list with shell-like quoting (e.g. `/bin/sh -c 'exec init'`); the first word must be an absolute path.",
		Example: "/lib/systemd/systemd --log-level=info",
		set:     func(c *Container, v string) error { return setWords(&c.Init.Command, v) },
		get:     func(c *Container) string { return joinWords(c.Init.Command) },
		check:   checkCommand,
	},
	{
		Name:    "init.stop_signal",
		Doc:     "Signal `lodge stop` sends to init: a name like SIGTERM or SIGRTMIN+3, or a number. Empty means chosen from the init: SIGRTMIN+3 for systemd, SIGPWR for others.",
		Example: "SIGRTMIN+3",
		set:     func(c *Container, v string) error { c.Init.StopSignal = strings.TrimSpace(v); return nil },
		get:     func(c *Container) string { return c.Init.StopSignal },
		check:   checkStopSignal,
	},
	{
		Name:    "init.stop_timeout",
		Doc:     "How long `lodge stop` waits for init to exit after the stop signal before it kills the container, e.g. 30s or 2m.",
		Example: "1m30s",
		set:     func(c *Container, v string) error { return setDuration(&c.Init.StopTimeout, v) },
		get:     func(c *Container) string { return c.Init.StopTimeout.String() },
		check:   checkStopTimeout,
	},
	{
		Name:    "limits.cpu",
		Doc:     "CPU time the container may use, in CPUs: 1.5 is one and a half CPUs' worth of time, spread over any CPUs. The smallest quota is 0.01, the largest the host's number of CPUs; 0 means no limit.",
		Example: "1.5",
		set:     func(c *Container, v string) error { return setFloat(&c.Limits.CPU, v) },
		get:     func(c *Container) string { return strconv.FormatFloat(c.Limits.CPU, 'f', -1, 64) },
		check:   checkCPU,
	},
	{
		Name:    "limits.cpuset",
		Doc:     "CPUs the container's processes may run on, in the kernel's list format, e.g. 0-1 or 0,2. Empty means all CPUs.",
		Example: "0-1",
		set:     func(c *Container, v string) error { c.Limits.Cpuset = strings.TrimSpace(v); return nil },
		get:     func(c *Container) string { return c.Limits.Cpuset },
		check:   checkCpuset,
	},
	{
		Name:    "limits.disk",
		Doc:     "Disk space the container's root filesystem may use, in the units of limits.memory, enforced by its storage backend. overlay (the default on ext4): its own changes live on an ext4 image of that size, writes past it fail with ENOSPC and `df /` inside shows the limit; set, shrunk or removed while the container is stopped (running, it can only grow, and only with CAP_SYS_RESOURCE), and at least 16MiB. btrfs: a qgroup, writes past it fail with EDQUOT, `df /` shows the whole filesystem, and making btrfs subvolumes inside is refused. dir cannot enforce it. A backend that cannot take a value refuses it with the reason (`config set` and `create -c` fail, nothing changes). Empty or 0 means no limit.",
		Example: "10GiB",
		set:     setDisk,
		get:     func(c *Container) string { return c.Limits.Disk.String() },
		check:   checkDisk,
	},
	{
		Name:    "limits.memory",
		Doc:     "Memory limit for all the container's processes together, page cache included. K, M, G, T and KiB, MiB, GiB, TiB are powers of 1024; KB, MB, GB, TB are powers of 1000; a plain number is bytes. 0 means no limit.",
		Example: "512MiB",
		set:     func(c *Container, v string) error { return setSize(&c.Limits.Memory, v) },
		get:     func(c *Container) string { return c.Limits.Memory.String() },
		check:   checkMemory,
	},
	{
		Name:    "limits.network.egress",
		Doc:     "Bandwidth each bridged NIC of the container may send, in bits per second with decimal units (500kbit, 10Mbit, 1Gbit; at least 8kbit), shaped on the host's side of the NIC (a tbf behind an ifb), where the container cannot remove it. 0 or empty: no limit. Takes effect at once, also on a running container.",
		Example: "10Mbit",
		set:     func(c *Container, v string) error { return setBitRate(&c.Limits.Network.Egress, v) },
		get:     func(c *Container) string { return c.Limits.Network.Egress.String() },
		check:   func(*Container) error { return nil }, // ParseBitRate checked it
	},
	{
		Name:    "limits.network.ingress",
		Doc:     "Bandwidth each bridged NIC of the container may receive, in the units of limits.network.egress, shaped on the host's side of the NIC (a tbf on its host end). 0 or empty: no limit. Takes effect at once, also on a running container.",
		Example: "100Mbit",
		set:     func(c *Container, v string) error { return setBitRate(&c.Limits.Network.Ingress, v) },
		get:     func(c *Container) string { return c.Limits.Network.Ingress.String() },
		check:   func(*Container) error { return nil }, // ParseBitRate checked it
	},
	{
		Name:    "limits.pids",
		Doc:     "Maximum number of processes and threads in the container; 0 means no limit. The default stops fork bombs and is far above what a system container needs; `create` writes the host's default (`[defaults]` in lodge.toml) into the container's config.toml, and a config.toml without the key gets the built-in default.",
		Example: "1024",
		set:     func(c *Container, v string) error { return setInt(&c.Limits.Pids, v) },
		get:     func(c *Container) string { return strconv.FormatInt(c.Limits.Pids, 10) },
		check:   checkPids,
	},
	{
		Name:    "limits.swap",
		Doc:     "Swap the container may use on top of limits.memory, in the same units; needs limits.memory. 0 means no swap limit is set, so the container may swap as much as the host allows.",
		Example: "1GiB",
		set:     func(c *Container, v string) error { return setSize(&c.Limits.Swap, v) },
		get:     func(c *Container) string { return c.Limits.Swap.String() },
		check:   checkSwap,
	},
	{
		Name:    "lxcfs.cpu_quota_view",
		Doc:     "Whether the /proc and /sys views count CPUs from the CPU quota (limits.cpu, rounded up, within the cpuset) instead of the cpuset. nproc still shows the cpuset (it asks the scheduler). Takes effect at once, also on a running container (within a second).",
		Example: "true",
		set:     func(c *Container, v string) error { return setBool(&c.LXCFS.CPUQuotaView, v) },
		get:     func(c *Container) string { return strconv.FormatBool(c.LXCFS.CPUQuotaView) },
		check:   func(*Container) error { return nil }, // any boolean is fine
	},
	{
		Name:    "lxcfs.enabled",
		Doc:     "Whether the container sees its own /proc/meminfo, cpuinfo, stat, uptime, loadavg, swaps, diskstats and /sys/devices/system/cpu, rendered from its cgroups by lodge's FUSE server, so that free, top, uptime and nproc show its limits. Takes effect at the next start.",
		Example: "false",
		set:     func(c *Container, v string) error { return setBool(&c.LXCFS.Enabled, v) },
		get:     func(c *Container) string { return strconv.FormatBool(c.LXCFS.Enabled) },
		check:   func(*Container) error { return nil }, // any boolean is fine
	},
	{
		Name:    "rootfs.shift",
		Doc:     "How the root filesystem's files, which keep ids 0..65535 on disk, are mapped to the container's host ids: auto uses an idmapped mount, or shifts ownership with chown where the filesystem cannot idmap; idmap requires an idmapped mount; chown always shifts ownership.",
		Example: ShiftIDMap,
		set:     func(c *Container, v string) error { c.Rootfs.Shift = strings.TrimSpace(v); return nil },
		get:     func(c *Container) string { return c.Rootfs.Shift },
		check:   checkShift,
	},
	{
		Name:    "security.nesting",
		Doc:     "Whether the container may run containers of its own (lodge, LXC, Docker or systemd-nspawn inside): it gets an unmasked proc and sysfs at /dev/.lodge, so that it can mount new ones, and sees what /proc's masks hide (docs/security.md). Takes effect at the next start.",
		Example: "true",
		set:     func(c *Container, v string) error { return setBool(&c.Security.Nesting, v) },
		get:     func(c *Container) string { return strconv.FormatBool(c.Security.Nesting) },
		check:   func(*Container) error { return nil }, // any boolean is fine
	},
	{
		Name:    "security.syscalls.allow",
		Doc:     "System calls to allow although the default seccomp filter denies them, as a word list of names. Takes effect at the next start, and for `lodge exec` at once.",
		Example: "perf_event_open",
		set:     func(c *Container, v string) error { return setWords(&c.Security.Syscalls.Allow, v) },
		get:     func(c *Container) string { return joinWords(c.Security.Syscalls.Allow) },
		check: func(c *Container) error {
			if err := checkSyscallNames("security.syscalls.allow", c.Security.Syscalls.Allow); err != nil {
				return err
			}
			return checkSyscallConflicts("security.syscalls.allow", c.Security.Syscalls)
		},
	},
	{
		Name:    "security.syscalls.deny",
		Doc:     "System calls to deny on top of the default seccomp filter, as a word list of names; they fail with EPERM. Takes effect at the next start, and for `lodge exec` at once.",
		Example: "mknod mknodat",
		set:     func(c *Container, v string) error { return setWords(&c.Security.Syscalls.Deny, v) },
		get:     func(c *Container) string { return joinWords(c.Security.Syscalls.Deny) },
		check:   func(c *Container) error { return checkSyscallNames("security.syscalls.deny", c.Security.Syscalls.Deny) },
	},
	{
		Name:     "source.created",
		Doc:      "When the container was created (RFC 3339). Set by `lodge create`.",
		Example:  "2025-01-31T12:00:00Z",
		ReadOnly: true,
		get:      func(c *Container) string { return formatTime(c.Source.Created) },
	},
	{
		Name:     "source.image",
		Doc:      "Image alias the container was created from, if any. Set by `lodge create`.",
		Example:  "debian-base",
		ReadOnly: true,
		get:      func(c *Container) string { return c.Source.Image },
	},
	{
		Name:     "source.options",
		Doc:      "Template options the container was built with, as name=value words. Set by `lodge create`.",
		Example:  "release=bookworm",
		ReadOnly: true,
		get:      func(c *Container) string { return formatOptions(c.Source.Options) },
	},
	{
		Name:     "source.template",
		Doc:      "Template the container was built from, e.g. debian or busybox. Set by `lodge create`.",
		Example:  "debian",
		ReadOnly: true,
		get:      func(c *Container) string { return c.Source.Template },
	},
}

// Keys returns every key, sorted by name.
func Keys() []Key {
	keys := append(slices.Clone(keyRegistry), nicKeys()...)
	keys = append(keys, proxyKey())
	slices.SortFunc(keys, func(a, b Key) int { return strings.Compare(a.Name, b.Name) })
	return keys
}

// LookupKey finds a key by name. The error for an unknown name suggests the
// nearest key and lists the settable ones.
func LookupKey(name string) (Key, error) {
	for _, key := range keyRegistry {
		if key.Name == name {
			return key, nil
		}
	}
	var names []string
	for _, key := range Keys() {
		names = append(names, key.Name)
	}
	return Key{}, fmt.Errorf("unknown key %q%s; settable keys: %s",
		name, didYouMean(name, names), strings.Join(settableKeyNames(), ", "))
}

func settableKeyNames() []string {
	var names []string
	for _, key := range Keys() {
		if !key.ReadOnly {
			names = append(names, key.Name)
		}
	}
	return names
}

// Set parses value into the key called name and validates the result; on
// error c is unchanged. An empty value resets the key to its default.
func (c *Container) Set(name, value string) error {
	updated := c.Clone()
	if err := updated.assign(name, value); err != nil {
		return err
	}
	// Validate the whole config, not only this key: some keys depend on
	// others (limits.swap needs limits.memory).
	if err := updated.Validate(); err != nil {
		return err
	}
	*c = *updated
	return nil
}

// assign parses value into the key without validating, for callers that
// set several keys before one Validate.
func (c *Container) assign(name, value string) error {
	if strings.HasPrefix(name, "network.") {
		if !utf8.ValidString(value) {
			return &keyError{Key: name, Err: fmt.Errorf("%q is not valid UTF-8 text; config files hold only UTF-8", value)}
		}
		return c.assignNIC(name, value)
	}
	if strings.HasPrefix(name, "proxy.") {
		if !utf8.ValidString(value) {
			return &keyError{Key: name, Err: fmt.Errorf("%q is not valid UTF-8 text; config files hold only UTF-8", value)}
		}
		return c.assignProxy(name, value)
	}
	key, err := LookupKey(name)
	if err != nil {
		return err
	}
	if key.ReadOnly {
		return fmt.Errorf("%s is read-only: it records how the container was made", name)
	}
	if !utf8.ValidString(value) {
		// config.toml is UTF-8: such a value would save a file no one can load.
		return &keyError{Key: name, Err: fmt.Errorf("%q is not valid UTF-8 text; config files hold only UTF-8", value)}
	}
	if value == "" {
		value = key.Default()
	}
	if err := key.set(c, value); err != nil {
		return &keyError{Key: name, Err: err}
	}
	return nil
}

// Get returns the value of the key called name, in the form Set accepts.
func (c *Container) Get(name string) (string, error) {
	if strings.HasPrefix(name, "network.") {
		return c.getNIC(name)
	}
	if proxy, ok := strings.CutPrefix(name, "proxy."); ok {
		return c.Proxies[proxy], nil
	}
	key, err := LookupKey(name)
	if err != nil {
		return "", err
	}
	return key.get(c), nil
}

// ParseAssignment splits "limits.memory=1G" into key and value. The value
// may be empty, which resets the key to its default.
func ParseAssignment(s string) (key, value string, err error) {
	key, value, found := strings.Cut(s, "=")
	key = strings.TrimSpace(key)
	switch {
	case !found:
		return "", "", fmt.Errorf("%q is not key=value; write e.g. limits.memory=512MiB", s)
	case key == "":
		return "", "", fmt.Errorf("%q has no key before '='; write e.g. limits.memory=512MiB", s)
	}
	return key, strings.TrimSpace(value), nil
}

// setDisk accepts "" as no limit too: the contract says "" or "0".
func setDisk(c *Container, v string) error {
	if strings.TrimSpace(v) == "" {
		c.Limits.Disk = 0
		return nil
	}
	return setSize(&c.Limits.Disk, v)
}

func setReadyTimeout(c *Container, v string) error {
	var timeout Duration
	if err := setDuration(&timeout, v); err != nil {
		return err
	}
	c.Boot.ReadyTimeout = &timeout
	return nil
}

func setSize(dst *Size, value string) error {
	size, err := ParseSize(value)
	if err != nil {
		return err
	}
	*dst = size
	return nil
}

func setDuration(dst *Duration, value string) error {
	duration, err := ParseDuration(value)
	if err != nil {
		return err
	}
	*dst = duration
	return nil
}

func setBool(dst *bool, value string) error {
	b, err := strconv.ParseBool(strings.TrimSpace(value))
	if err != nil {
		return fmt.Errorf("%q is not true or false", value)
	}
	*dst = b
	return nil
}

func setFloat(dst *float64, value string) error {
	number, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
	if err != nil {
		return fmt.Errorf("%q is not a number; use e.g. 1.5", value)
	}
	*dst = number
	return nil
}

func setInt(dst *int64, value string) error {
	number, err := strconv.ParseInt(strings.TrimSpace(value), 10, 64)
	if err != nil {
		return fmt.Errorf("%q is not a whole number; use e.g. 1024", value)
	}
	*dst = number
	return nil
}

func setWords(dst *[]string, value string) error {
	words, err := splitWords(value)
	if err != nil {
		return fmt.Errorf("%q cannot be split into words: %w", value, err)
	}
	*dst = words
	return nil
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.RFC3339)
}

// formatOptions writes options as sorted name=value words.
func formatOptions(options map[string]string) string {
	words := make([]string, 0, len(options))
	for name, value := range options {
		words = append(words, name+"="+value)
	}
	sort.Strings(words)
	return joinWords(words)
}
