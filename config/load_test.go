package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

const testPath = "containers/c1/config.toml"

func parseTestContainer(text string) (*Container, error) {
	return parseContainer(sourceFile{path: testPath, text: text})
}

func TestLoadGood(t *testing.T) {
	tests := []struct {
		name string
		text string
		want func(*Container)
	}{
		{
			name: "only version gives defaults",
			text: "version = 1\n",
			want: func(*Container) {},
		},
		{
			name: "every key",
			text: `# made by hand
version = 1

[source]
template = "debian"
image = "base"
created = 2025-01-02T03:04:05Z
[source.options]
release = "bookworm"

[limits]
memory = "512MiB"
swap = "1G"
cpu = 1.5
cpuset = "0-1"
pids = 1024

[init]
command = ["/lib/systemd/systemd", "--log-level=info"]
stop_signal = "SIGRTMIN+3"
stop_timeout = "1m30s"

[rootfs]
shift = "idmap"
`,
			want: func(c *Container) {
				c.Source = Source{
					Template: "debian",
					Image:    "base",
					Options:  map[string]string{"release": "bookworm"},
					Created:  time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
				}
				c.Limits = Limits{Memory: 512 << 20, Swap: 1 << 30, CPU: 1.5, Cpuset: "0-1", Pids: 1024}
				c.Init = Init{
					Command:     []string{"/lib/systemd/systemd", "--log-level=info"},
					StopSignal:  "SIGRTMIN+3",
					StopTimeout: Duration(90 * time.Second),
				}
				c.Rootfs.Shift = ShiftIDMap
			},
		},
		{
			name: "integers: memory in bytes, cpu as whole CPUs",
			text: "version = 1\n[limits]\nmemory = 268435456\ncpu = 2\n",
			want: func(c *Container) { c.Limits.Memory = 256 << 20; c.Limits.CPU = 2 },
		},
		{
			name: "dotted keys and inline tables",
			text: "version = 1\nlimits.pids = 10\ninit = { stop_timeout = \"5s\" }\n",
			want: func(c *Container) { c.Limits.Pids = 10; c.Init.StopTimeout = Duration(5 * time.Second) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseTestContainer(tt.text)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			want := Default()
			tt.want(want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		wantErr string // the whole error text
	}{
		{
			name:    "unknown key with line and suggestion",
			text:    "version = 1\n\n[limits]\ncpu = 1\n\n\nmemroy = \"1G\"\n",
			wantErr: `containers/c1/config.toml:7: unknown key "limits.memroy" (did you mean "limits.memory"?)`,
		},
		{
			name:    "unknown key without a near match",
			text:    "version = 1\n[init]\nflavour = \"x\"\n",
			wantErr: `containers/c1/config.toml:3: unknown key "init.flavour"`,
		},
		{
			name:    "key outside its table",
			text:    "version = 1\nmemory = \"1G\"\n",
			wantErr: `containers/c1/config.toml:2: unknown key "memory" (did you mean "limits.memory"?)`,
		},
		{
			name:    "unknown nested table reported once",
			text:    "version = 1\n[limitz]\nmemory = \"1G\"\ncpu = 1\n[limits.extra]\nx = 1\n",
			wantErr: "containers/c1/config.toml:2: unknown key \"limitz\" (did you mean \"limits\"?)\ncontainers/c1/config.toml:5: unknown key \"limits.extra\"",
		},
		{
			name:    "keys are case-sensitive",
			text:    "version = 1\n[Limits]\nMemory = \"1G\"\n[init]\nSTOP_SIGNAL = \"TERM\"\n",
			wantErr: "containers/c1/config.toml:2: unknown key \"Limits\" (did you mean \"limits\"?)\ncontainers/c1/config.toml:5: unknown key \"init.STOP_SIGNAL\" (did you mean \"init.stop_signal\"?)",
		},
		{
			name:    "unknown dotted key",
			text:    "version = 1\ninit.stop_timeot = \"5s\"\n",
			wantErr: `containers/c1/config.toml:2: unknown key "init.stop_timeot" (did you mean "init.stop_timeout"?)`,
		},
		{
			name:    "unknown key in inline table points at its line",
			text:    "version = 1\n\ninit = { comand = [\"/init\"] }\n",
			wantErr: `containers/c1/config.toml:3: unknown key "init.comand" (did you mean "init.command"?)`,
		},
		{
			name:    "wrong type keeps the line",
			text:    "version = 1\n[limits]\n\ncpuset = 5\n",
			wantErr: `containers/c1/config.toml:4: limits.cpuset: incompatible types: TOML value has type int64; destination has type string`,
		},
		{
			name:    "bad size keeps the line",
			text:    "version = 1\n[limits]\nmemory = \"lots\"\n",
			wantErr: `containers/c1/config.toml:3: limits.memory: "lots" is not a size; ` + sizeHint,
		},
		{
			name:    "float size needs a unit",
			text:    "version = 1\n[limits]\nmemory = 1.5\n",
			wantErr: `containers/c1/config.toml:3: limits.memory: "1.500000" has a fraction but no unit, and bytes are whole; ` + sizeHint,
		},
		{
			name:    "duration without unit",
			text:    "version = 1\n[init]\nstop_timeout = 30\n",
			wantErr: `containers/c1/config.toml:3: init.stop_timeout: "30" is not a duration; ` + durationHint,
		},
		{
			name:    "table where a value belongs",
			text:    "version = 1\n[limits.memory]\nx = 1\n",
			wantErr: `containers/c1/config.toml:2: limits.memory: incompatible types: TOML value has type map[string]any; destination has type primitive (string-like)`,
		},
		{
			name:    "syntax error: unquoted size",
			text:    "version = 1\n[limits]\nmemory = 1G\n",
			wantErr: `containers/c1/config.toml:3: expected a top-level item to end with a newline, comment, or EOF, but got 'G' instead`,
		},
		{
			name:    "missing version",
			text:    "[limits]\nmemory = \"1G\"\n",
			wantErr: `containers/c1/config.toml: no version key; add version = 1 at the top of the file`,
		},
		{
			name:    "newer version",
			text:    "# hi\nversion = 7\n",
			wantErr: `containers/c1/config.toml:2: written by a newer lodge (version 7, this lodge understands up to 1)`,
		},
		{
			name:    "version zero",
			text:    "version = 0\n",
			wantErr: `containers/c1/config.toml:1: version: 0 is not a valid version; write version = 1`,
		},
		{
			name:    "version as string",
			text:    "version = \"1\"\n",
			wantErr: `containers/c1/config.toml:1: version: "1" is not a whole number; write version = 1`,
		},
		{
			name: "every validation problem, in file order",
			text: "version = 1\n[rootfs]\nshift = \"x\"\n[limits]\ncpu = -1\ncpuset = \"0-x\"\n",
			wantErr: "containers/c1/config.toml:3: rootfs.shift: \"x\" must be one of auto, idmap, chown\n" +
				"containers/c1/config.toml:5: limits.cpu: -1 is negative; use a number of CPUs like 1.5, or 0 for no limit\n" +
				"containers/c1/config.toml:6: limits.cpuset: \"0-x\" is not a CPU list (\"x\" is not a CPU number); use e.g. \"0-1\" or \"0,2\"",
		},
		{
			name:    "validation error for an empty command",
			text:    "version = 1\n[init]\ncommand = []\n",
			wantErr: `containers/c1/config.toml:3: init.command: is empty; set the init program, e.g. /sbin/init`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseTestContainer(tt.text)
			if err == nil {
				t.Fatal("no error")
			}
			if err.Error() != tt.wantErr {
				t.Errorf("error:\n%s\nwant:\n%s", err, tt.wantErr)
			}
		})
	}
}

func TestTooManyUnknownKeys(t *testing.T) {
	var text strings.Builder
	text.WriteString("version = 1\n")
	for i := range 20 {
		fmt.Fprintf(&text, "key%d = 1\n", i)
	}
	_, err := parseTestContainer(text.String())
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != maxUnknownKeys+1 || lines[maxUnknownKeys] != testPath+": more unknown keys not shown" {
		t.Errorf("error has %d lines, ending %q", len(lines), lines[len(lines)-1])
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(path, []byte("version = 1\n[limits]\npids = 7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil || c.Limits.Pids != 7 {
		t.Fatalf("Load = %+v, %v", c, err)
	}
	_, err = Load(filepath.Join(dir, "missing.toml"))
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "missing.toml") {
		t.Errorf("Load(missing) error = %v; want fs.ErrNotExist naming the file", err)
	}
}

// TestMigrationsComplete fails the day CurrentVersion is bumped without a
// migration from every older version, or a migration is left for a version
// that is no longer older.
func TestMigrationsComplete(t *testing.T) {
	for name, table := range map[string]struct {
		steps   map[int]func(map[string]any) error
		current int
	}{
		"container": {migrations, CurrentVersion},
		"host":      {hostMigrations, CurrentHostVersion},
	} {
		for version := 1; version < table.current; version++ {
			if table.steps[version] == nil {
				t.Errorf("%s: no migration from version %d to %d", name, version, version+1)
			}
		}
		for version := range table.steps {
			if version < 1 || version >= table.current {
				t.Errorf("%s: migration from version %d, which is not older than %d", name, version, table.current)
			}
		}
	}
}

// TestUpgrade runs the migration machinery with a made-up version 2 that
// renamed limits.tasks to limits.pids.
func TestUpgrade(t *testing.T) {
	renameTasks := func(doc map[string]any) error {
		limits, _ := doc["limits"].(map[string]any)
		if tasks, ok := limits["tasks"]; ok {
			limits["pids"] = tasks
			delete(limits, "tasks")
		}
		return nil
	}
	steps := map[int]func(map[string]any) error{1: renameTasks}
	file := sourceFile{path: testPath, text: "version = 1\n[limits]\ntasks = 5\n"}

	upgraded, err := file.upgrade(2, steps)
	if err != nil {
		t.Fatal(err)
	}
	if upgraded.upgradedFrom != 1 || !strings.Contains(upgraded.text, "pids = 5") || !strings.Contains(upgraded.text, "version = 2") {
		t.Errorf("upgraded = %+v", upgraded)
	}

	_, err = file.upgrade(3, steps)
	if err == nil || err.Error() != testPath+": no upgrade from version 2 to 3 (a bug in lodge)" {
		t.Errorf("missing step error = %v", err)
	}

	failing := map[int]func(map[string]any) error{1: func(map[string]any) error { return errors.New("boom") }}
	if _, err := file.upgrade(2, failing); err == nil || err.Error() != testPath+": upgrade from version 1 to 2: boom" {
		t.Errorf("failing step error = %v", err)
	}

	unchanged, err := file.upgrade(1, steps)
	if err != nil || unchanged != file {
		t.Errorf("upgrade to the same version = %+v, %v; want the file unchanged", unchanged, err)
	}
}

func TestErrorsAfterUpgradeHaveNoLine(t *testing.T) {
	file := sourceFile{path: testPath, text: "version = 2\n[limits]\nmemroy = 1\n", upgradedFrom: 1}
	err := file.errorAt([]string{"limits", "memroy"}, errors.New("unknown key"))
	if err.Error() != testPath+": after upgrading from version 1: unknown key" {
		t.Errorf("error = %v", err)
	}
}

func TestTomlKeys(t *testing.T) {
	got := tomlKeys(reflect.TypeFor[Container]())
	want := []string{
		"version",
		"source", "source.template", "source.image", "source.options", "source.created",
		"limits", "limits.memory", "limits.swap", "limits.cpu", "limits.cpuset", "limits.pids", "limits.disk",
		"limits.network", "limits.network.ingress", "limits.network.egress",
		"init", "init.command", "init.stop_signal", "init.stop_timeout",
		"rootfs", "rootfs.shift",
		"lxcfs", "lxcfs.enabled", "lxcfs.cpu_quota_view",
		"security", "security.nesting", "security.syscalls", "security.syscalls.deny", "security.syscalls.allow",
		"boot", "boot.autostart", "boot.after", "boot.ready_command", "boot.ready_timeout", "boot.host_shutdown",
		"network", "network.name", "network.type", "network.network", "network.parent", "network.hwaddr", "network.ipv4", "network.ipv6", "network.mtu",
		"proxy",
	}
	if !slices.Equal(got, want) {
		t.Errorf("tomlKeys = %q\nwant %q", got, want)
	}
}
