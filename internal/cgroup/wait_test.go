package cgroup

import (
	"testing"
	"time"
)

// waitFor polls cond until it holds, failing the test with what it waited
// for after timeout: a hang guard, not a timing assertion.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
