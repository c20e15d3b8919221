package manager

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestLibraryLeavesProcessStateAlone: package manager is a library a server
// drives from goroutines, so it must not change process-wide signal
// handling or the caller's terminal: those belong to cmd/lodge. (The
// monitor, a process of its own, may.)
func TestLibraryLeavesProcessStateAlone(t *testing.T) {
	forbidden := map[string]string{
		"os/signal":               "signal handling is the caller's (cmd/lodge)",
		"lodge/internal/terminal": "the caller's terminal is the caller's (cmd/lodge)",
	}
	files, err := filepath.Glob("*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no Go files found (%v)", err)
	}
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if why, bad := forbidden[path]; bad {
				t.Errorf("%s imports %s: %s", file, path, why)
			}
		}
	}
}
