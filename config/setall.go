package config

import "fmt"

// Assignment is one key=value of `lodge create -c` or `lodge config set`.
type Assignment struct{ Key, Value string }

// SetAll assigns every key, then validates the result once: keys that
// depend on each other may come in any order (network.0.type=macvlan
// before network.0.parent=eth1). A key that does not parse is reported
// with its assignment; on error c is unchanged.
func (c *Container) SetAll(assignments []Assignment) error {
	updated := c.Clone()
	for _, a := range assignments {
		if err := updated.assign(a.Key, a.Value); err != nil {
			return fmt.Errorf("%s=%s: %w", a.Key, a.Value, err)
		}
	}
	if err := updated.Validate(); err != nil {
		return err
	}
	*c = *updated
	return nil
}
