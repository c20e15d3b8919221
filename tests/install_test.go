package tests

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"lodge/config"
	"lodge/internal/testreq"
)

// The units make install puts in UNITDIR (cmd/lodge/dist/systemd), and the one whose
// cgroup systemd delegates to lodge: the base the installed host config names.
var (
	installedUnits = []string{"lodge.slice", "lodge-lxcfs.service", "lodge-containers.service", "lodge-autostart.service", "lodge-serve.service"}
	delegatedUnit  = "lodge-containers.service"
)

// TestMakeInstall installs lodge as a package build would (make install
// DESTDIR=... PREFIX=/usr) and checks what lands where; that systemd's own
// checker accepts the units offline, with the binaries they run present;
// that the host config names the delegated unit's cgroup as the base; that
// a second install keeps an edited host config; and that make uninstall
// removes everything else.
func TestMakeInstall(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		testreq.Skip(t, "systemd", "needs make to run make install")
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		testreq.Skip(t, "systemd", "needs systemd-analyze (Debian's systemd package) to check the units")
	}
	dest := t.TempDir()
	out := makeInstall(t, "install", dest)

	unitDir := filepath.Join(dest, "usr/lib/systemd/system")
	checkInstalledPrograms(t, dest)
	units := readUnits(t, unitDir)
	hostConfig := filepath.Join(dest, config.DefaultHostConfigPath)
	host, err := config.LoadHost(hostConfig)
	if err != nil {
		t.Fatalf("the installed host config: %v\nmake install said:\n%s", err, out)
	}
	if want := unitCgroup(t, units, delegatedUnit); host.Cgroup.Parent != want || len(host.Cgroup.Parents) != 0 {
		t.Errorf("the installed host config's cgroup base is %q (parents %v); want %s's cgroup %q on every hierarchy",
			host.Cgroup.Parent, host.Cgroup.Parents, delegatedUnit, want)
	}
	for _, doc := range []string{"usr/share/doc/lodge/docs/service.md", "usr/share/doc/lodge/lodge.toml.example"} {
		if _, err := os.Stat(filepath.Join(dest, doc)); err != nil {
			t.Errorf("make install did not install %s: %v", doc, err)
		}
	}

	// systemd's checker, offline: --root makes it read the units and look for
	// the programs they run inside DESTDIR, with the host's own units (targets,
	// modprobe@.service) copied in beside them. It exits 0 on warnings
	// (unknown keys, bad values), so any output fails too.
	copyHostUnits(t, filepath.Join(dest, "lib/systemd/system"))
	verify := func() (string, error) {
		args := []string{"verify", "--root=" + dest, "--man=no", "--generators=no"}
		for _, u := range installedUnits {
			args = append(args, filepath.Join(unitDir, u))
		}
		out, err := exec.Command(analyze, args...).CombinedOutput()
		return string(out), err
	}
	if out, err := verify(); err != nil || out != "" {
		t.Fatalf("systemd-analyze verify refused the installed units (%v):\n%s", err, out)
	}
	// The check must be one that fails: without the program the units run.
	lodge := filepath.Join(dest, "usr/lib/lodge/lodge")
	if err := os.Rename(lodge, lodge+".away"); err != nil {
		t.Fatal(err)
	}
	if out, err := verify(); err == nil || !strings.Contains(out, "/usr/bin/lodge is not executable") {
		t.Errorf("systemd-analyze verify accepted units whose /usr/bin/lodge is missing (%v):\n%s", err, out)
	}
	if err := os.Rename(lodge+".away", lodge); err != nil {
		t.Fatal(err)
	}

	// An admin's host config survives a reinstall, with a word about the base.
	edited := "version = 1\n[cgroup]\nparent = \"/lodge\"\n"
	if err := os.WriteFile(hostConfig, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	out = makeInstall(t, "install", dest)
	if data, _ := os.ReadFile(hostConfig); string(data) != edited {
		t.Errorf("make install replaced an existing host config; it now reads:\n%s", data)
	}
	if !strings.Contains(out, "left as it is") || !strings.Contains(out, "warning: its [cgroup] parent") {
		t.Errorf("make install kept a host config whose base is not the delegated cgroup without saying so:\n%s", out)
	}

	makeInstall(t, "uninstall", dest)
	var left []string
	for _, dir := range []string{"usr", "etc"} {
		filepath.WalkDir(filepath.Join(dest, dir), func(path string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				left = append(left, strings.TrimPrefix(path, dest))
			}
			return nil
		})
	}
	if want := []string{config.DefaultHostConfigPath}; !slices.Equal(left, want) {
		t.Errorf("after make uninstall these are left: %v; want only %v", left, want)
	}
}

// makeInstall runs make TARGET DESTDIR=dest PREFIX=/usr in the repository and
// returns what it printed. The test's own make (make test) must not pass its
// flags or jobserver down.
func makeInstall(t *testing.T, target, dest string) string {
	t.Helper()
	cmd := exec.Command("make", "--no-print-directory", "-C", "..", target, "DESTDIR="+dest, "PREFIX=/usr")
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "MAKEFLAGS=") || strings.HasPrefix(kv, "MFLAGS=") || strings.HasPrefix(kv, "MAKELEVEL=")
	})
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make %s DESTDIR=%s PREFIX=/usr: %v\n%s", target, dest, err, out)
	}
	return string(out)
}

// checkInstalledPrograms checks that lodge is on PATH (bin/lodge) as a link
// to PREFIX/lib/lodge/lodge, beside the companions it looks for there.
func checkInstalledPrograms(t *testing.T, dest string) {
	t.Helper()
	if target, err := os.Readlink(filepath.Join(dest, "usr/bin/lodge")); err != nil || target != "/usr/lib/lodge/lodge" {
		t.Errorf("usr/bin/lodge: %q, %v; want a link to /usr/lib/lodge/lodge", target, err)
	}
	for _, name := range []string{"lodge", "lodge-monitor", "lodge-lxcfs", "lodge-helper"} {
		fi, err := os.Stat(filepath.Join(dest, "usr/lib/lodge", name))
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			t.Errorf("usr/lib/lodge/%s is not an installed program: %v", name, err)
		}
	}
}

// placeholder matches what make install fills in (@PREFIX@, @DOCDIR@).
var placeholder = regexp.MustCompile(`@[A-Z]+@`)

// lodgeUnitRef matches the name of one of lodge's units in a unit file.
var lodgeUnitRef = regexp.MustCompile(`\blodge[a-z-]*\.(service|slice)\b`)

// readUnits reads the installed units, checks that install filled in every
// placeholder and that every lodge unit they name is installed (systemd
// accepts a Wants= or After= of a missing unit without a word), and returns
// their text by name.
func readUnits(t *testing.T, dir string) map[string]string {
	t.Helper()
	units := map[string]string{}
	for _, name := range installedUnits {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("make install did not install the unit %s: %v", name, err)
		}
		units[name] = string(data)
	}
	for name, text := range units {
		if placeholder.MatchString(text) {
			t.Errorf("%s: a placeholder was not filled in:\n%s", name, text)
		}
		for _, line := range strings.Split(text, "\n") {
			if strings.HasPrefix(line, "#") {
				continue
			}
			for _, ref := range lodgeUnitRef.FindAllString(line, -1) {
				if _, ok := units[ref]; !ok {
					t.Errorf("%s names %s, which make install does not install: %q", name, ref, line)
				}
			}
		}
	}
	return units
}

// unitCgroup returns the cgroup systemd gives the unit name: /SLICE/NAME, for
// a unit that says Slice= with a slice directly below the root, and Delegate=yes.
func unitCgroup(t *testing.T, units map[string]string, name string) string {
	t.Helper()
	text := units[name]
	if !regexp.MustCompile(`(?m)^Delegate=yes$`).MatchString(text) {
		t.Errorf("%s does not say Delegate=yes", name)
	}
	slice := regexp.MustCompile(`(?m)^Slice=(\S+)$`).FindStringSubmatch(text)
	if slice == nil || strings.Contains(strings.TrimSuffix(slice[1], ".slice"), "-") {
		t.Fatalf("%s has no Slice= directly below the root: %v", name, slice)
	}
	return "/" + slice[1] + "/" + name
}

// copyHostUnits copies the host's systemd units (sysinit.target and the
// others lodge's units depend on) to dir.
func copyHostUnits(t *testing.T, dir string) {
	t.Helper()
	for _, src := range []string{"/usr/lib/systemd/system", "/lib/systemd/system"} {
		if _, err := os.Stat(filepath.Join(src, "sysinit.target")); err != nil {
			continue
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("cp", "-a", src+"/.", dir).CombinedOutput(); err != nil {
			t.Fatalf("copy the host's units: %v\n%s", err, out)
		}
		return
	}
	testreq.Skip(t, "systemd", "the host has no systemd units (sysinit.target) for systemd-analyze verify to resolve lodge's against")
}
