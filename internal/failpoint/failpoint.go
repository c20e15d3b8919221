// Package failpoint lets tests make one named step of a multi-step operation
// fail for real, to prove that the failure path cleans up everything the earlier
// steps made. A step calls Check with its name; Check fails only when the
// environment variable LODGE_FAILPOINT names that step. Without the variable,
// Check costs one map lookup.
package failpoint

import (
	"fmt"
	"os"
)

// EnvVar names the step that must fail.
const EnvVar = "LODGE_FAILPOINT"

var armed = os.Getenv(EnvVar)

// Check returns an error if step is the armed failpoint.
func Check(step string) error {
	if armed != "" && armed == step {
		return fmt.Errorf("failpoint %s: injected failure (%s=%s)", step, EnvVar, armed)
	}
	return nil
}

// Env returns the environment entry that carries the armed failpoint to a
// child process, or nothing.
func Env() []string {
	if armed == "" {
		return nil
	}
	return []string{EnvVar + "=" + armed}
}
