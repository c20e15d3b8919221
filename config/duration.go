package config

import (
	"fmt"
	"strings"
	"time"
)

// Duration is a time.Duration written as text in TOML ("30s", "1m30s"),
// because a bare integer would leave the unit to guesswork.
type Duration time.Duration

const durationHint = "use a number with a unit, e.g. 30s, 2m or 1m30s"

// ParseDuration parses Go duration syntax and rejects negative values.
func ParseDuration(s string) (Duration, error) {
	text := strings.TrimSpace(s)
	parsed, err := time.ParseDuration(text)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration; %s", s, durationHint)
	}
	if parsed < 0 {
		return 0, fmt.Errorf("%q is negative; %s", s, durationHint)
	}
	return Duration(parsed), nil
}

// Std returns the value as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// String gives Go's canonical form, e.g. "1m30s".
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText writes the canonical form.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText accepts everything ParseDuration does.
func (d *Duration) UnmarshalText(text []byte) error {
	parsed, err := ParseDuration(string(text))
	if err != nil {
		return err
	}
	*d = parsed
	return nil
}
