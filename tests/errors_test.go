package tests

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestUserErrors: each mistake gets one clear line, a documented exit status,
// and changes nothing.
func TestUserErrors(t *testing.T) {
	e := newEnv(t)
	e.createBusybox("c1")
	e.createBusybox("run1")
	e.must("start", "run1")
	before := snapshotRoot(t, e)
	cases := []struct {
		name string
		code int
		want string
		args []string
	}{
		{"name starting with a digit", 2, "must start with a letter", []string{"create", "1abc", "-t", "busybox"}},
		{"name with a slash", 2, "invalid container name", []string{"create", "a/b", "-t", "busybox"}},
		{"name too long", 2, "invalid container name", []string{"create", strings.Repeat("a", 64), "-t", "busybox"}},
		{"missing template flag", 2, "needs --template", []string{"create", "c2"}},
		{"unknown template", 2, `unknown template "nosuch"`, []string{"create", "c2", "-t", "nosuch"}},
		{"unknown config key", 2, `did you mean "limits.memory"`, []string{"create", "c2", "-t", "busybox", "-c", "limits.memroy=1G"}},
		{"bad config value", 2, "limits.memory", []string{"create", "c2", "-t", "busybox", "-c", "limits.memory=lots"}},
		{"name clash", 4, "already exists", []string{"create", "c1", "-t", "busybox"}},
		{"start a running container", 4, "is running", []string{"start", "run1"}},
		{"delete a running container", 4, "--force", []string{"delete", "run1"}},
		{"stop a stopped container", 4, "is not running", []string{"stop", "c1"}},
		{"start a missing container", 3, "not found", []string{"start", "nosuch"}},
		{"unknown flag", 2, "unknown flag", []string{"list", "--bogus"}},
		{"bad format", 2, "--format", []string{"list", "--format", "xml"}},
		{"bad timeout", 2, "--timeout", []string{"stop", "run1", "--timeout", "soon"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.expectFail(c.code, c.want, c.args...)
		})
	}
	if after := snapshotRoot(t, e); after != before {
		t.Errorf("failed commands changed the lodge root:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if i := e.info("run1"); i.State != "RUNNING" {
		t.Errorf("run1 is %s after the failed commands", i.State)
	}
}

// snapshotRoot lists the files of a lodge root (not inside root filesystems)
// with sizes, to show that a failed command changed nothing.
func snapshotRoot(t *testing.T, e *env) string {
	t.Helper()
	var b strings.Builder
	filepath.Walk(e.root, func(path string, fi os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		if fi.IsDir() && fi.Name() == "rootfs" || strings.HasSuffix(path, "/log") || path == e.viewsMount() {
			return filepath.SkipDir
		}
		rel, _ := filepath.Rel(e.root, path)
		b.WriteString(rel)
		if !fi.IsDir() {
			b.WriteString(" " + itoa(int(fi.Size())))
		}
		b.WriteString("\n")
		return nil
	})
	return b.String()
}

func TestBrokenConfig(t *testing.T) {
	e := newEnv(t)
	e.createBusybox("b1")
	path := filepath.Join(e.root, "containers", "b1", "config.toml")
	good, _ := os.ReadFile(path)
	os.WriteFile(path, []byte(strings.Replace(string(good), "[limits]\n", "[limits]\nmemroy = \"1G\"\n", 1)), 0o644)
	r := e.expectFail(2, `unknown key "limits.memroy"`, "start", "b1")
	if !strings.Contains(r.stderr, "config.toml:") {
		t.Errorf("error does not name the file and line: %s", r.stderr)
	}
	infos := e.list()
	if len(infos) != 1 || infos[0].State != "STOPPED" || !strings.Contains(infos[0].Error, "memroy") {
		t.Errorf("list with a broken config = %+v", infos)
	}
	os.WriteFile(path, good, 0o644)
	e.must("start", "b1")
	e.must("stop", "--force", "b1")
}

// TestHostFit: create and config set refuse values this host cannot honour;
// a config file changed behind lodge's back is refused at start.
func TestHostFit(t *testing.T) {
	e := newEnv(t)
	e.expectFail(2, "not online", "create", "h0", "--template", "busybox", "-c", "limits.cpuset=4000")
	e.createBusybox("h1")
	e.expectFail(2, "limits.cpu: 1e+308 is more CPUs than Linux supports", "config", "set", "h1", "limits.cpu=1e308")
	e.expectFail(2, "CPUs is more than this host has", "config", "set", "h1", "limits.cpu=4096")
	e.expectFail(2, "not online", "config", "set", "h1", "limits.cpuset=4000")
	path := filepath.Join(e.root, "containers", "h1", "config.toml")
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(string(text), "[limits]\n", "[limits]\ncpuset = \"4000\"\n", 1)
	if err := os.WriteFile(path, []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	e.expectFail(2, "not online", "start", "h1")
	e.assertNoLeftovers("h1")
}

func TestNotRoot(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := e.command(ctx, "list")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 5 || !strings.Contains(string(out), "must run as root") {
		t.Fatalf("as nobody: exit %d (%v), output %q; want exit 5 and a hint to use root", code, err, out)
	}
}

// TestLeftoversOfKilledCommands: a create or delete killed half-way leaves a
// directory in ROOT/tmp, never a half-made container; the next create clears it.
func TestLeftoversOfKilledCommands(t *testing.T) {
	e := newEnv(t)
	e.createBusybox("first") // makes the root
	killedCreate := filepath.Join(e.root, "tmp", "ghost.create")
	os.MkdirAll(filepath.Join(killedCreate, "rootfs"), 0o700)
	os.WriteFile(filepath.Join(killedCreate, ".owner"), []byte("999999999 1\n"), 0o600) // no such process
	killedDelete := filepath.Join(e.root, "tmp", "old.delete-abc")
	os.MkdirAll(filepath.Join(killedDelete, "rootfs"), 0o700)
	if infos := e.list(); len(infos) != 1 {
		t.Fatalf("half-made containers are listed: %+v", infos)
	}
	e.createBusybox("ghost")
	for _, dir := range []string{killedCreate, killedDelete} {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%s survived the next create", dir)
		}
	}
}

func TestConfigSetAndEdit(t *testing.T) {
	e := newEnv(t)
	e.createBusybox("cfg1", "limits.pids=100")
	e.must("start", "cfg1")
	out := e.must("config", "set", "cfg1", "limits.pids=50", "init.stop_timeout=9s")
	if !strings.Contains(out, "applied to the running") {
		t.Errorf("config set on a running container said: %q", out)
	}
	expectFile(t, filepath.Join(e.info("cfg1").Cgroups["pids"], "pids.max"), "50")
	show := e.must("config", "show", "cfg1")
	if !strings.Contains(show, "pids = 50") || !strings.Contains(show, `stop_timeout = "9s"`) {
		t.Errorf("config show after set:\n%s", show)
	}
	before := show
	e.expectFail(2, `did you mean "limits.pids"`, "config", "set", "cfg1", "limits.pid=5")
	e.expectFail(2, "limits.cpu", "config", "set", "cfg1", "limits.pids=10", "limits.cpu=-1")
	if after := e.must("config", "show", "cfg1"); after != before {
		t.Errorf("a refused config set changed the file:\n%s", after)
	}
	// edit: the editor is a script; a valid change is saved, an invalid one
	// is refused (stdin is not a terminal, so there is no second try).
	e.extraEnv = []string{`EDITOR=sed -i s/9s/11s/`}
	e.must("config", "edit", "cfg1")
	if show := e.must("config", "show", "cfg1"); !strings.Contains(show, `stop_timeout = "11s"`) {
		t.Errorf("config edit did not save:\n%s", show)
	}
	e.extraEnv = []string{`EDITOR=sed -i s/11s/eleven/`}
	e.expectFail(2, "init.stop_timeout", "config", "edit", "cfg1")
	e.extraEnv = nil
	if show := e.must("config", "show", "cfg1"); !strings.Contains(show, `stop_timeout = "11s"`) {
		t.Errorf("an invalid edit changed the file:\n%s", show)
	}
}
