package config

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestValidateDefault(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
}

func TestValidateMessages(t *testing.T) {
	tests := []struct {
		name    string
		change  func(*Container)
		wantErr string
	}{
		{"version", func(c *Container) { c.Version = 0 },
			"version: 0 is not supported; this lodge writes version = 1"},
		{"negative memory", func(c *Container) { c.Limits.Memory = -1 },
			"limits.memory: -1 is negative; use a size like 512MiB, or 0 for no limit"},
		{"memory without unit", func(c *Container) { c.Limits.Memory = 512 },
			"limits.memory: 512 bytes is too small to boot; did you forget the unit? use a size like 512MiB, or 0 for no limit"},
		{"negative swap", func(c *Container) { c.Limits.Memory = 1 << 30; c.Limits.Swap = -1 },
			"limits.swap: -1 is negative; use a size like 1GiB, or 0 for no swap limit"},
		{"swap without memory", func(c *Container) { c.Limits.Swap = 1 << 30 },
			"limits.swap: 1GiB is swap on top of limits.memory, which is not set; set limits.memory too, or set limits.swap to 0"},
		{"negative cpu", func(c *Container) { c.Limits.CPU = -1 },
			"limits.cpu: -1 is negative; use a number of CPUs like 1.5, or 0 for no limit"},
		{"tiny cpu", func(c *Container) { c.Limits.CPU = 0.001 },
			"limits.cpu: 0.001 is below the smallest quota of 0.01 CPUs; use a number of CPUs like 1.5, or 0 for no limit"},
		{"NaN cpu", func(c *Container) { c.Limits.CPU = math.NaN() },
			"limits.cpu: NaN is not a number of CPUs; use a number like 1.5, or 0 for no limit"},
		{"infinite cpu", func(c *Container) { c.Limits.CPU = math.Inf(1) },
			"limits.cpu: +Inf is not a number of CPUs; use a number like 1.5, or 0 for no limit"},
		{"bad cpuset", func(c *Container) { c.Limits.Cpuset = "0-x" },
			`limits.cpuset: "0-x" is not a CPU list ("x" is not a CPU number); use e.g. "0-1" or "0,2"`},
		{"negative pids", func(c *Container) { c.Limits.Pids = -5 },
			"limits.pids: -5 is negative; use a number of tasks like 1024, or 0 for no limit"},
		{"empty command", func(c *Container) { c.Init.Command = nil },
			"init.command: is empty; set the init program, e.g. /sbin/init"},
		{"relative command", func(c *Container) { c.Init.Command = []string{"init"} },
			`init.command: "init" is not an absolute path; start with the full path of the init program, e.g. /sbin/init`},
		{"NUL in command", func(c *Container) { c.Init.Command = []string{"/sbin/init", "a\x00b"} },
			"init.command: contains a NUL byte, which no program argument can hold; remove it"},
		{"bad signal", func(c *Container) { c.Init.StopSignal = "SIGFOO" },
			`init.stop_signal: "SIGFOO" is not a signal; use a name like SIGTERM, SIGPWR, SIGRTMIN+3 or a number`},
		{"negative timeout", func(c *Container) { c.Init.StopTimeout = -1 },
			"init.stop_timeout: -1ns is negative; use a duration like 30s"},
		{"zero timeout", func(c *Container) { c.Init.StopTimeout = 0 },
			"init.stop_timeout: 0s gives init no time to shut down; use a duration like 30s (lodge stop --force kills at once)"},
		{"bad shift", func(c *Container) { c.Rootfs.Shift = "x" },
			`rootfs.shift: "x" must be one of auto, idmap, chown`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.change(c)
			err := c.Validate()
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("Validate() = %v\nwant %s", err, tt.wantErr)
			}
			var problem *keyError
			if !errors.As(err, &problem) || !strings.HasPrefix(tt.wantErr, problem.Key+": ") {
				t.Errorf("error %v does not carry its key", err)
			}
		})
	}
}

func TestValidateAcceptsLimits(t *testing.T) {
	c := Default()
	c.Limits = Limits{Memory: minMemory, Swap: 1, CPU: minCPU, Cpuset: "0,2-3", Pids: 1}
	c.Init.StopSignal = "37"
	c.Rootfs.Shift = ShiftChown
	if err := c.Validate(); err != nil {
		t.Errorf("Validate() = %v", err)
	}
}

func TestValidateReportsAllProblems(t *testing.T) {
	c := Default()
	c.Limits.CPU = -1
	c.Limits.Pids = -1
	c.Rootfs.Shift = "x"
	err := c.Validate()
	for _, key := range []string{"limits.cpu:", "limits.pids:", "rootfs.shift:"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("Validate() = %v; want it to mention %s", err, key)
		}
	}
}
