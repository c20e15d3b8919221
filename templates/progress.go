package templates

// Reporter shows the progress of long work (a debootstrap, an image import) to
// the user.
type Reporter interface {
	// Step reports a new stage in one line.
	Step(format string, args ...any)
	// Progress reports how far the current stage is: done of total units
	// (total 0: unknown), with a short label for what is happening.
	Progress(label string, done, total int64)
}

// Silent is a Reporter that shows nothing.
type Silent struct{}

// Step does nothing.
func (Silent) Step(string, ...any) {}

// Progress does nothing.
func (Silent) Progress(string, int64, int64) {}
