package migrate

import (
	"strings"
	"testing"

	"lodge/internal/testreq"
)

func TestVersionString(t *testing.T) {
	for v, want := range map[int]string{40201: "4.2.1", 40200: "4.2", 31701: "3.17.1", 31700: "3.17"} {
		if got := VersionString(v); got != want {
			t.Errorf("VersionString(%d) = %q, want %q", v, got, want)
		}
	}
}

// findInstalled returns the CRIU make deps installs, or skips for "criu".
func findInstalled(t *testing.T) *CRIU {
	t.Helper()
	c, err := FindCRIU("")
	if err != nil {
		testreq.Skipf(t, "criu", "no usable CRIU (make deps installs one): %v", err)
	}
	return c
}

func TestFindCRIU(t *testing.T) {
	c := findInstalled(t)
	if c.Version < MinCRIU {
		t.Fatalf("FindCRIU found %s, older than %d", c, MinCRIU)
	}
	// The swrk RPC's own feature answer: soft-dirty tracking needs
	// CONFIG_MEM_SOFT_DIRTY, which this kernel may lack; only log it.
	t.Logf("%s, features %+v", c, c.Features)
	again, err := FindCRIU(c.Path)
	if err != nil || again != c {
		t.Errorf("FindCRIU(%q) again = %v, %v; want the cached %p", c.Path, again, err, c)
	}
	if v, err := c.Client().GetCriuVersion(); err != nil || v != c.Version {
		t.Errorf("Client().GetCriuVersion() = %d, %v; want %d", v, err, c.Version)
	}
}

func TestFindCRIUErrors(t *testing.T) {
	_, err := FindCRIU("/nonexistent/criu")
	want := "criu.path /nonexistent/criu in the host config does not exist: run make deps and remove criu.path (lodge then uses /usr/local/lib/lodge/criu/criu), or set it to a CRIU 4.2 or newer"
	if err == nil || err.Error() != want {
		t.Errorf("FindCRIU(missing) = %v\nwant %s", err, want)
	}
	// A binary that is not CRIU: its swrk "version request" fails.
	_, err = FindCRIU("/bin/true")
	if err == nil || !strings.HasPrefix(err.Error(), "/bin/true does not answer as CRIU (its version request failed: ") ||
		!strings.HasSuffix(err.Error(), "): lodge needs CRIU 4.2 or newer (older ones, like Debian 12's 3.17, do not even start on this kernel); run make deps, or set criu.path in the host config") {
		t.Errorf("FindCRIU(/bin/true) = %v", err)
	}
}
