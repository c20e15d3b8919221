// Package revert collects undo steps during a multi-step setup and runs them, last
// first, unless the setup reaches its end. It keeps failure paths from leaving
// mounts, cgroups, files or processes behind:
//
//	r := revert.New()
//	defer r.Fail()
//	if err := makeCgroup(); err != nil { return err }
//	r.Add(removeCgroup)
//	...
//	r.Success()
package revert

// Reverter holds undo steps in the order they were added.
type Reverter struct {
	undo []func()
	done bool
}

// New returns an empty Reverter.
func New() *Reverter { return &Reverter{} }

// Add registers an undo step. Steps run in reverse order of registration.
func (r *Reverter) Add(f func()) { r.undo = append(r.undo, f) }

// Fail runs the undo steps, last first, unless Success was called. It is meant
// to be deferred right after New.
func (r *Reverter) Fail() {
	if r.done {
		return
	}
	r.done = true
	for i := len(r.undo) - 1; i >= 0; i-- {
		r.undo[i]()
	}
}

// Success marks the setup as complete, so a deferred Fail does nothing.
func (r *Reverter) Success() { r.done = true }

// Clone returns the pending undo steps as one function and marks r as done, so a
// caller can hand the cleanup of a finished setup to whoever tears it down later.
func (r *Reverter) Clone() func() {
	steps := append([]func(){}, r.undo...)
	r.done = true
	return func() {
		for i := len(steps) - 1; i >= 0; i-- {
			steps[i]()
		}
	}
}
