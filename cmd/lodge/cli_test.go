package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"lodge/manager"
	"lodge/remote/client"
)

// runCLI runs the CLI without touching the system: opening the manager fails
// with a marker, so a command that got past flag parsing exits 5.
func runCLI(args ...string) (int, string) {
	var stdout, stderr bytes.Buffer
	a := &app{stdin: os.Stdin, stdout: &stdout, stderr: &stderr,
		openManager: func(string) (*manager.Manager, error) { return nil, manager.ErrNotRoot },
		openRemote:  func(string, string) (*client.Client, error) { return nil, manager.ErrNotRoot }}
	code := run(args, a)
	return code, stdout.String() + stderr.String()
}

func TestCommandLines(t *testing.T) {
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"create", "c1", "-t", "busybox", "-c", "limits.memory=1G"}, exitNotRoot, "root"},
		{[]string{"create", "c1"}, exitUsage, "needs --template"},
		{[]string{"create"}, exitUsage, "needs a container name"},
		{[]string{"create", "c1", "-t", "busybox", "-o", "novalue"}, exitUsage, "KEY=VALUE"},
		{[]string{"start", "a", "b"}, exitUsage, "needs a container name"},
		{[]string{"stop", "c1", "--timeout", "10"}, exitNotRoot, ""},
		{[]string{"stop", "c1", "--timeout", "1m30s", "--force"}, exitNotRoot, ""},
		{[]string{"stop", "c1", "--timeout", "-5s"}, exitUsage, "--timeout"},
		{[]string{"autostart"}, exitNotRoot, ""},
		{[]string{"autostart", "--parallel", "8", "--format", "json"}, exitNotRoot, ""},
		{[]string{"autostart", "web"}, exitUsage, "takes no arguments"},
		{[]string{"autostart", "--parallel", "-1"}, exitUsage, "--parallel"},
		{[]string{"autostart", "--format", "yaml"}, exitUsage, "--format"},
		{[]string{"shutdown-all", "--timeout", "60"}, exitNotRoot, ""},
		{[]string{"shutdown-all", "--timeout", "1m30s", "--format", "json"}, exitNotRoot, ""},
		{[]string{"shutdown-all", "--timeout", "-5"}, exitUsage, "--timeout"},
		{[]string{"list", "--format", "json"}, exitNotRoot, ""},
		{[]string{"ls", "--format", "toml"}, exitUsage, "table, json, yaml, csv"},
		{[]string{"info", "c1", "--format", "csv"}, exitUsage, "table, json or yaml"},
		{[]string{"exec", "c1", "--", "ls", "-l"}, exitNotRoot, "root"}, // 5 like every command, not 125
		{[]string{"exec", "c1", "-u", "nobody", "-e", "A=b", "-w", "/tmp", "--", "id"}, exitNotRoot, ""},
		{[]string{"exec", "c1", "ps"}, exitNotRoot, ""},
		{[]string{"exec", "c1"}, exitUsage, "needs a command"},
		{[]string{"exec", "c1", "c2", "--", "ls"}, exitUsage, "one container name"},
		{[]string{"exec", "c1", "-t", "-T", "--", "ls"}, exitUsage, "contradict"},
		{[]string{"delete", "c1", "--force"}, exitNotRoot, ""},
		{[]string{"config", "set", "c1", "limits.cpu=2"}, exitNotRoot, ""},
		{[]string{"config", "show"}, exitUsage, "needs a container name"},
		{[]string{"bogus"}, exitFailure, "unknown command"},
		{[]string{"list", "--bogus"}, exitUsage, "unknown flag"},
		{[]string{"version"}, exitOK, "lodge "},
		{[]string{"copy", "c1", "c2", "--snapshot"}, exitNotRoot, ""},
		{[]string{"clone", "c1/snap0", "c2", "--format", "json"}, exitNotRoot, ""},
		{[]string{"copy", "c1"}, exitUsage, "needs a source"},
		{[]string{"copy", "c1", "c2", "--format", "yaml"}, exitUsage, "table or json"},
		{[]string{"copy", "c1", "h2:c2", "--format", "json"}, exitNotRoot, ""},
		{[]string{"copy", "c1", "h2:c2", "--snapshot"}, exitUsage, "always full"},
		{[]string{"copy", "h2:c1", "c2", "--snapshot"}, exitUsage, "always full"},
		{[]string{"copy", "h2:c1", "h3:c2"}, exitUsage, "not both"},
		{[]string{"copy", "h2:c1", "c2"}, exitNotRoot, ""},
		{[]string{"snapshot"}, exitUsage, "needs a subcommand"},
		{[]string{"snapshot", "bogus"}, exitUsage, "needs a subcommand"},
		{[]string{"snapshot", "create", "c1"}, exitNotRoot, ""},
		{[]string{"snapshot", "create", "c1", "s1", "--format", "json"}, exitNotRoot, ""},
		{[]string{"snapshot", "create"}, exitUsage, "needs a container name"},
		{[]string{"snapshot", "create", "c1", "s1", "s2"}, exitUsage, "needs a container name"},
		{[]string{"snapshot", "list", "c1", "--format", "json"}, exitNotRoot, ""},
		{[]string{"snapshot", "list", "c1", "--format", "csv"}, exitUsage, "table, json or yaml"},
		{[]string{"snapshot", "restore", "c1"}, exitUsage, "a snapshot name"},
		{[]string{"snapshot", "delete", "c1", "s1"}, exitNotRoot, ""},
		{[]string{"freeze", "c1"}, exitNotRoot, ""},
		{[]string{"migrate", "c1", "h2", "--live", "--format", "json"}, exitNotRoot, ""},
		{[]string{"migrate", "c1", "h2:"}, exitNotRoot, ""},
		{[]string{"migrate", "c1"}, exitUsage, "a container name and a remote"},
		{[]string{"migrate", "c1", "h2:c2"}, exitUsage, "a remote's name"},
		{[]string{"migrate", "c1", "h2", "--format", "yaml"}, exitUsage, "table or json"},
		{[]string{"pause", "c1", "--timeout", "2s"}, exitNotRoot, ""},
		{[]string{"freeze", "c1", "--timeout", "0"}, exitUsage, "--timeout"},
		{[]string{"freeze"}, exitUsage, "needs a container name"},
		{[]string{"unfreeze", "c1"}, exitNotRoot, ""},
		{[]string{"resume", "c1"}, exitNotRoot, ""},
		{[]string{"unfreeze", "c1", "c2"}, exitUsage, "needs a container name"},
		{[]string{"list", "h2:", "--format", "json"}, exitNotRoot, ""},
		{[]string{"list", "h2:c1"}, exitUsage, "REMOTE:"},
		{[]string{"list", "h2:", "h3:"}, exitUsage, "a remote as REMOTE:"},
		{[]string{"info", "h2:c1", "--format", "json"}, exitNotRoot, ""},
		{[]string{"start", "h2:c1"}, exitNotRoot, ""},
		{[]string{"stop", "h2:c1", "--timeout", "5"}, exitNotRoot, ""},
		{[]string{"stop", "h2:c1", "--stateful"}, exitUsage, "not in the host API"},
		{[]string{"serve"}, exitUsage, "needs --listen"},
		{[]string{"serve", "--listen", "127.0.0.1:0"}, exitNotRoot, ""},
		{[]string{"trust", "add", "--expiry", "soon"}, exitUsage, "--expiry"},
		{[]string{"trust", "add", "--name", "h1", "--expiry", "10m"}, exitNotRoot, ""},
		{[]string{"trust", "list", "--format", "csv"}, exitUsage, "table, json or yaml"},
		{[]string{"trust", "remove"}, exitUsage, "needs a client name"},
		{[]string{"remote", "add", "h2", "10.0.0.2"}, exitUsage, "needs --token"},
		{[]string{"remote", "add", "h2"}, exitUsage, "a remote name and an address"},
		{[]string{"remote", "list", "--format", "json"}, exitNotRoot, ""},
		{[]string{"remote", "remove", "h2"}, exitNotRoot, ""},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			code, out := runCLI(c.args...)
			if code != c.code || !strings.Contains(out, c.want) {
				t.Fatalf("exit %d, output %q; want exit %d with %q", code, out, c.code, c.want)
			}
		})
	}
}

func TestParseTimeout(t *testing.T) {
	cases := map[string]time.Duration{"30": 30 * time.Second, "1.5": 1500 * time.Millisecond, "2m": 2 * time.Minute}
	for in, want := range cases {
		if got, err := parseTimeout(in); err != nil || got != want {
			t.Errorf("parseTimeout(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0", "-1", "soon", "0s"} {
		if _, err := parseTimeout(bad); err == nil {
			t.Errorf("parseTimeout(%q) accepted", bad)
		}
	}
}

func TestExitCodes(t *testing.T) {
	cases := []struct {
		err  error
		code int
	}{
		{errors.New("boom"), exitFailure},
		{fmt.Errorf("x: %w", manager.ErrInvalid), exitUsage},
		{fmt.Errorf("x: %w", manager.ErrNotFound), exitNotFound},
		{fmt.Errorf("x: %w", manager.ErrExists), exitConflict},
		{fmt.Errorf("x: %w", manager.ErrRunning), exitConflict},
		{fmt.Errorf("x: %w", manager.ErrNotRunning), exitConflict},
		{fmt.Errorf("x: %w", manager.ErrFrozen), exitConflict},
		{manager.ErrNotRoot, exitNotRoot},
		{fmt.Errorf("x: %w", manager.ErrIncompatible), exitIncompatible},
		{execFailed(manager.ErrNotRunning), exitExecFailed},
		{execFailed(manager.ErrNotRoot), exitNotRoot},
		{usageError{"bad"}, exitUsage},
	}
	for _, c := range cases {
		if got := exitCodeOf(c.err); got != c.code {
			t.Errorf("exitCodeOf(%v) = %d, want %d", c.err, got, c.code)
		}
	}
}
