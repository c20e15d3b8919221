package manager

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"lodge/config"
	"lodge/internal/idmap"
	"lodge/migrate"
)

func TestCheckTargetCRIU(t *testing.T) {
	both := []string{migrate.FeatureNftablesLock, migrate.FeatureTimens}
	for _, c := range []struct {
		ans   MigrationAnswer
		needs []string
		want  string // "" for no refusal
	}{
		{MigrationAnswer{CRIU: 40201, CRIUFeatures: both}, both, ""},
		{MigrationAnswer{CRIU: 40300, CRIUFeatures: both}, both, ""}, // newer there
		{MigrationAnswer{CRIU: 40201, CRIUFeatures: []string{migrate.FeatureTimens}}, []string{migrate.FeatureTimens}, ""},
		{MigrationAnswer{CRIU: 40200, CRIUFeatures: both}, both, "CRIU on the target is 4.2, older than here (4.2.1)"},
		{MigrationAnswer{CRIU: 40201, CRIUFeatures: []string{migrate.FeatureTimens}}, both, "lacks network_lock_nftables, which the dump of web uses"},
		// A target that reports nothing (an older lodge) has nothing.
		{MigrationAnswer{CRIU: 40201}, both, "lacks network_lock_nftables, timens,"},
	} {
		err := checkTargetCRIU("web", 40201, c.needs, c.ans)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%+v, needs %v: refused: %v", c.ans, c.needs, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrIncompatible)):
			t.Errorf("%+v, needs %v: %v; want %q, incompatible", c.ans, c.needs, err, c.want)
		}
	}
}

func TestCheckOfferedCPU(t *testing.T) {
	here, err := migrate.LocalCPU(false)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkOfferedCPU("web", here); err != nil {
		t.Fatalf("this host's own CPU: %v", err)
	}
	with := func(flags ...string) migrate.CPU {
		return migrate.CPU{Arch: here.Arch, Flags: append(append([]string{}, here.Flags...), flags...)}
	}
	// Flags of the kernel and hints of speed are not compared.
	if err := checkOfferedCPU("web", with("vmx", "tsc_known_freq", "erms")); err != nil && here.Arch == "amd64" {
		t.Errorf("kernel-only flags: %v", err)
	}
	if here.Arch == "amd64" || here.Arch == "arm64" {
		err = checkOfferedCPU("web", with("avx512_lodgetest", "sha512"))
		if err == nil || !errors.Is(err, ErrIncompatible) || !strings.Contains(err.Error(), "the CPU here lacks avx512_lodgetest") {
			t.Errorf("a flag this CPU lacks: %v", err)
		}
		t.Logf("refused: %v", err)
	}
	other := "arm64"
	if here.Arch == "arm64" {
		other = "amd64"
	}
	if err := checkOfferedCPU("web", migrate.CPU{Arch: other}); !errors.Is(err, ErrIncompatible) || !strings.Contains(err.Error(), "web runs on "+other) {
		t.Errorf("another architecture: %v", err)
	}
	if err := checkOfferedCPU("web", migrate.CPU{}); !errors.Is(err, ErrIncompatible) {
		t.Errorf("no CPU said: %v", err)
	}
}

func TestReserveRefused(t *testing.T) {
	m := &Manager{host: &config.Host{IDMap: config.HostIDMap{First: 100000, Size: 65536, Count: 10}}}
	in := idmap.Range{HostID: 100000 + 65536, Size: 65536}
	for _, c := range []struct {
		err  error
		r    idmap.Range
		kind error
	}{
		{fmt.Errorf("range %s %w by container peer here", in, idmap.ErrTaken), in, ErrInUse},
		{fmt.Errorf("container \"web\" %w", idmap.ErrExists), in, ErrExists},
		{errors.New("not a range of this host's pool"), idmap.Range{HostID: 100000 + 10*65536, Size: 65536}, ErrIncompatible},
		{errors.New("not a range of this host's pool"), idmap.Range{HostID: 100001, Size: 65536}, ErrIncompatible},
		{errors.New("not a range of this host's pool"), idmap.Range{HostID: 100000, Size: 1000}, ErrIncompatible},
		{errors.New("not a range of this host's pool"), idmap.Range{HostID: 5000, Size: 65536}, ErrIncompatible},
	} {
		err := m.reserveRefused(c.err, c.r)
		if !errors.Is(err, c.kind) || !strings.HasPrefix(err.Error(), c.err.Error()) {
			t.Errorf("%v (%s): %v, not of kind %v", c.err, c.r, err, c.kind)
		}
	}
	if err := m.reserveRefused(errors.New("disk full"), in); errors.Is(err, ErrIncompatible) || errors.Is(err, ErrInUse) {
		t.Errorf("another failure got a kind: %v", err)
	}
}
