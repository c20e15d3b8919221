package templates

import (
	"strings"
	"testing"
)

func TestResolveOptions(t *testing.T) {
	tmpl := Template{Name: "debian", Options: []Option{{Name: "release", Default: "bookworm"}, {Name: "mirror", Default: "http://m"}}}
	got, err := tmpl.ResolveOptions(map[string]string{"release": "trixie"}, map[string]string{"mirror": "http://local"})
	if err != nil || got["release"] != "trixie" || got["mirror"] != "http://local" {
		t.Fatalf("resolved %v, %v", got, err)
	}
	if _, err := tmpl.ResolveOptions(map[string]string{"relase": "x"}, nil); err == nil || !strings.Contains(err.Error(), "release, mirror") {
		t.Fatalf("unknown option error = %v", err)
	}
	if _, err := Default().Lookup("nosuch"); err == nil || !strings.Contains(err.Error(), "busybox") {
		t.Fatalf("unknown template error = %v", err)
	}
}
