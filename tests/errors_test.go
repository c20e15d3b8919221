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
		if fi.IsDir() && fi.Name() == "rootfs" || strings.HasSuffix(path, "/log") {
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
	os.WriteFile(path, append(append([]byte{}, good...), "\n[limits]\nmemroy = \"1G\"\n"...), 0o644)
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

func TestHostFit(t *testing.T) {
	e := newEnv(t)
	e.createBusybox("h1", "limits.cpuset=4000")
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
