package templates

import "testing"

func TestDebootstrapStage(t *testing.T) {
	cases := []struct {
		line, stage, pkg string
		ok               bool
	}{
		{"I: Retrieving libc6 2.36-9+deb12u4", "retrieving", "libc6", true},
		{"I: Extracting base-files...", "extracting", "base-files", true},
		{"I: Unpacking bash...", "unpacking", "bash", true},
		{"I: Configuring systemd...", "configuring", "systemd", true},
		{"I: Retrieving InRelease ", "", "", false},
		{"I: Retrieving Packages ", "", "", false},
		{"I: Unpacking required packages...", "", "", false},
		{"I: Configuring required packages...", "", "", false},
		{"I: Validating libc6 2.36-9", "", "", false},
		{"W: Retrieving foo", "", "", false},
	}
	for _, c := range cases {
		stage, pkg, ok := debootstrapStage(c.line)
		if stage != c.stage || pkg != c.pkg || ok != c.ok {
			t.Errorf("%q: got %q %q %v", c.line, stage, pkg, ok)
		}
	}
}

func TestDebootstrapArgs(t *testing.T) {
	opts := map[string]string{"release": "trixie", "mirror": "http://m/debian", "variant": "minbase", "init": "sysvinit", "packages": "less, vim"}
	args, err := debootstrapArgs(opts, "/r")
	want := []string{"--include=sysvinit-core,procps,less,vim", "--variant=minbase", "trixie", "/r", "http://m/debian"}
	if err != nil || len(args) != len(want) {
		t.Fatalf("args %v, %v", args, err)
	}
	for i := range want {
		if args[i] != want[i] {
			t.Fatalf("args %v, want %v", args, want)
		}
	}
	for _, bad := range []map[string]string{
		{"release": "bookworm", "variant": "minbase", "init": "openrc"},
		{"release": "bookworm", "variant": "huge", "init": "systemd"},
		{"release": "bookworm; rm -rf /", "variant": "minbase", "init": "systemd"},
	} {
		if _, err := debootstrapArgs(bad, "/r"); err == nil {
			t.Errorf("accepted %v", bad)
		}
	}
}
