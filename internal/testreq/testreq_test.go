package testreq

import (
	"runtime"
	"strings"
	"testing"
)

// TestEnvironmentNamesKnownFeatures fails `make test` when LODGE_TEST_REQUIRE
// holds a name no test knows (a typo would otherwise require nothing).
func TestEnvironmentNamesKnownFeatures(t *testing.T) {
	if err := Check(); err != nil {
		t.Fatal(err)
	}
}

func TestRequired(t *testing.T) {
	t.Setenv(Env, " fuse, cpus2 ")
	if !Required("fuse") || !Required("cpus2") || Required("overlay") {
		t.Errorf("with %q: fuse %v cpus2 %v overlay %v", " fuse, cpus2 ", Required("fuse"), Required("cpus2"), Required("overlay"))
	}
	t.Setenv(Env, "all")
	if !Required("overlay") {
		t.Error("all does not require overlay")
	}
	t.Setenv(Env, "fuse,fusee")
	if err := Check(); err == nil || !strings.Contains(err.Error(), "fusee") {
		t.Errorf("Check with a typo: %v", err)
	}
}

// TestSkipFailsWhenRequired runs Skip in subtests whose outcome is read
// back: skipped when the feature is not required, failed when it is.
func TestSkipFailsWhenRequired(t *testing.T) {
	for _, tt := range []struct {
		env        string
		wantFailed bool
	}{{"", false}, {"cpus2", false}, {"fuse", true}, {"all", true}} {
		t.Setenv(Env, tt.env)
		failed, skipped := outcome(t, func(tb testing.TB) { Skip(tb, "fuse", "no /dev/fuse") })
		if failed != tt.wantFailed || skipped == tt.wantFailed {
			t.Errorf("%s=%q: failed %v, skipped %v", Env, tt.env, failed, skipped)
		}
	}
}

// recorder is a testing.TB that records Fatalf and Skip instead of acting
// on the real test.
type recorder struct {
	testing.TB
	failed, skipped bool
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(string, ...any) {
	r.failed = true
	runtime.Goexit()
}

func (r *recorder) Skip(...any) {
	r.skipped = true
	runtime.Goexit()
}

// outcome runs fn with a recorder on a goroutine of its own (Fatalf and
// Skip end it) and tells what fn did.
func outcome(t *testing.T, fn func(testing.TB)) (failed, skipped bool) {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(r)
	}()
	<-done
	return r.failed, r.skipped
}
