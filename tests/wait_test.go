package tests

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// waitUntil polls cond for up to a minute: a hang guard, not a timing assertion.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if !eventually(time.Minute, cond) {
		t.Fatalf("gave up waiting for: %s", what)
	}
}

func waitFor(t *testing.T, e *env, name string, cond func(info) bool) info {
	t.Helper()
	var last info
	waitUntil(t, "state of "+name, func() bool {
		last = e.info(name)
		return cond(last)
	})
	return last
}

func regexpFind(pattern, text string) bool {
	return regexp.MustCompile(pattern).MatchString(text)
}

func itoa(n int) string { return strconv.Itoa(n) }

func expectFile(t *testing.T, path, want string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("read %s: %v", path, err)
		return
	}
	if got := strings.TrimSpace(string(data)); got != want {
		t.Errorf("%s = %q, want %q", path, got, want)
	}
}

// eventually tells whether cond holds within d, asking every 20 ms: for a
// check that is not fatal, or whose failure message needs what was seen.
func eventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}
