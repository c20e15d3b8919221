// Package layering holds no code, only the test that keeps lodge's import
// rules (docs/architecture.md, "Layers"): shared infrastructure in internal/
// and config at the bottom, rootfs, templates, lxcfs, migrate, storage and network above them,
// manager above those, the host API (remote/...) and the metrics exporter
// (metrics) above manager, the commands on top.
// Imports only go down.
package layering

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// layer gives the level of a lodge package; a package may import only
// packages of a lower level, or its own subpackages' and siblings' at the same
// level where noted in allowedSideways.
func layer(pkg string) int {
	switch {
	case pkg == "lodge/config" || strings.HasPrefix(pkg, "lodge/config/") ||
		strings.HasPrefix(pkg, "lodge/internal/"):
		return 0
	case hasRoot(pkg, "lodge/rootfs"), hasRoot(pkg, "lodge/templates"),
		hasRoot(pkg, "lodge/lxcfs"), hasRoot(pkg, "lodge/migrate"), hasRoot(pkg, "lodge/storage"),
		hasRoot(pkg, "lodge/network"):
		return 1
	case hasRoot(pkg, "lodge/manager"):
		return 2
	case hasRoot(pkg, "lodge/remote"), hasRoot(pkg, "lodge/metrics"):
		return 3
	default: // cmd/..., tests
		return 4
	}
}

func hasRoot(pkg, root string) bool { return pkg == root || strings.HasPrefix(pkg, root+"/") }

// importsOf maps each lodge package (by import path) to the lodge packages
// its files import, tests included.
func importsOf(t *testing.T, repo string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(repo, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "bin") && p != repo {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(repo, filepath.Dir(p))
		pkg := "lodge/" + filepath.ToSlash(rel)
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if hasRoot(path, "lodge") {
				out[pkg] = append(out[pkg], path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestImportsGoDown(t *testing.T) {
	imports := importsOf(t, "../..")
	if len(imports) < 10 {
		t.Fatalf("found imports for only %d packages; is the repository at ../..?", len(imports))
	}
	for pkg, deps := range imports {
		for _, dep := range deps {
			if err := check(pkg, dep); err != "" {
				t.Errorf("%s imports %s: %s", pkg, dep, err)
			}
		}
	}
}

// check returns why pkg must not import dep, or "".
func check(pkg, dep string) string {
	switch {
	case hasRoot(dep, "lodge/cmd"):
		return "nothing imports a command"
	case strings.HasPrefix(dep, "lodge/manager/") && !hasRoot(pkg, "lodge/manager"):
		return "only manager's own packages import manager's subpackages; use lodge/manager's API or move the code to internal/"
	case layer(dep) > layer(pkg):
		return "imports go down: internal and config, then rootfs, templates, lxcfs, migrate, storage and network, then manager, then remote, then the commands"
	}
	return ""
}

func TestCheckRefusesUpwardImports(t *testing.T) {
	bad := [][2]string{
		{"lodge/lxcfs/server", "lodge/manager/cgroup"},
		{"lodge/rootfs", "lodge/manager"},
		{"lodge/internal/store", "lodge/rootfs"},
		{"lodge/cmd/lodge", "lodge/manager/monitor"},
		{"lodge/tests", "lodge/manager/store"},
		{"lodge/manager", "lodge/cmd/lodge"},
		{"lodge/manager", "lodge/remote/client"},
		{"lodge/migrate", "lodge/remote/api"},
		{"lodge/remote/server", "lodge/cmd/lodge"},
		{"lodge/remote/server", "lodge/manager/monitor"},
	}
	for _, b := range bad {
		if check(b[0], b[1]) == "" {
			t.Errorf("%s importing %s was allowed", b[0], b[1])
		}
	}
	good := [][2]string{
		{"lodge/cmd/lodge", "lodge/manager"},
		{"lodge/manager", "lodge/manager/monitor"},
		{"lodge/manager/monitor", "lodge/rootfs"},
		{"lodge/lxcfs/server", "lodge/internal/cgroup"},
		{"lodge/templates", "lodge/rootfs"},
		{"lodge/config", "lodge/internal/seccomp"},
		{"lodge/remote/server", "lodge/manager"},
		{"lodge/remote/client", "lodge/remote/api"},
		{"lodge/cmd/lodge", "lodge/remote/client"},
	}
	for _, g := range good {
		if why := check(g[0], g[1]); why != "" {
			t.Errorf("%s importing %s was refused: %s", g[0], g[1], why)
		}
	}
}
