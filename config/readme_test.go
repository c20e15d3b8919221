package config

import (
	"os"
	"strings"
	"testing"
)

// TestReadmeListsEveryKey keeps the README's key table identical to the
// registry it is generated from: a key added without docs fails here.
func TestReadmeListsEveryKey(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	start := strings.Index(text, "<!-- keys:start")
	end := strings.Index(text, "<!-- keys:end -->")
	if start < 0 || end < 0 {
		t.Fatal("README.md lacks the <!-- keys:start --> ... <!-- keys:end --> block")
	}
	block := text[start:end]
	block = block[strings.Index(block, "\n")+1:]
	if block != KeysMarkdown() {
		t.Fatalf("README.md's key table is out of date; replace it with:\n%s", KeysMarkdown())
	}
}
