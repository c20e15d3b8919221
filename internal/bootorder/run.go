package bootorder

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// Plan says how Run walks a graph.
type Plan struct {
	Graph *Graph
	// Reverse walks in stop order: a container's turn comes once every
	// container that names it in boot.after has had its turn.
	Reverse bool
	// KeepGoing lets the containers waiting for one whose step failed (or
	// was skipped) have their turn anyway: a host shutdown stops everything.
	// Without it they are skipped, and so are those waiting for them.
	KeepGoing bool
	// Parallel bounds how many steps run at once (at least 1).
	Parallel int
	// Step is run once for each container whose turn has come, from its
	// own goroutine; its error marks the container failed.
	Step func(ctx context.Context, name string) error
	// Skip, if set, is told of each container skipped, and why, as it happens.
	Skip func(name, reason string)
}

// Outcome is what became of one container in a Run.
type Outcome struct {
	Err     error  // its step failed
	Skipped string // its step was not run, and why; "" if it ran
}

// OK tells whether the step ran and succeeded.
func (o Outcome) OK() bool { return o.Err == nil && o.Skipped == "" }

// Run runs p.Step for every container of p.Graph in dependency order (or
// stop order), as many at once as p.Parallel allows and the order permits:
// a container's turn comes as soon as the ones it waits for are done, not
// when a whole level is. A failure holds up only the containers that wait
// for the failed one. Containers that wait for a name that is not in the
// graph, or that sit in (or behind) a cycle, are skipped and say so. Once
// ctx ends, containers not yet begun are skipped. Run returns when every
// container has its outcome.
func Run(ctx context.Context, p Plan) map[string]Outcome {
	r := newRun(p)
	return r.loop(ctx)
}

type finished struct {
	name string
	err  error
}

type runner struct {
	Plan
	waitsFor map[string][]string // the containers each one waits for (in the graph)
	unblocks map[string][]string // the containers waiting for each one
	pending  map[string]int      // how many of those it waits for are not done yet
	blocked  map[string]string   // why a container will be skipped, once its turn comes
	outcomes map[string]Outcome
	// chain is the length of the longest line of containers that wait,
	// one for the next, for each one (itself included): of those whose
	// turn has come, the longest chains go first, so that a slow start
	// at the head of a long chain does not wait behind unrelated ones.
	chain map[string]int
}

func newRun(p Plan) *runner {
	r := &runner{Plan: p, waitsFor: map[string][]string{}, unblocks: map[string][]string{},
		pending: map[string]int{}, blocked: map[string]string{}, outcomes: map[string]Outcome{}}
	if r.Parallel < 1 {
		r.Parallel = 1
	}
	g := p.Graph
	for _, n := range g.names {
		for _, dep := range g.after[n] {
			if !g.Has(dep) {
				if !p.Reverse && r.blocked[n] == "" {
					r.blocked[n] = fmt.Sprintf("boot.after names %s, which is not a container here", dep)
				}
				continue
			}
			first, second := dep, n // dep starts before n...
			if p.Reverse {
				first, second = n, dep // ...and stops after it
			}
			r.waitsFor[second] = append(r.waitsFor[second], first)
			r.unblocks[first] = append(r.unblocks[first], second)
		}
	}
	for _, n := range g.names {
		r.pending[n] = len(r.waitsFor[n])
	}
	r.chain = map[string]int{}
	for _, n := range g.names {
		r.chainOf(n, map[string]bool{})
	}
	return r
}

// chainOf computes chain[n]; onPath guards against cycles (whose
// containers never get a turn anyway).
func (r *runner) chainOf(n string, onPath map[string]bool) int {
	if c, ok := r.chain[n]; ok {
		return c
	}
	if onPath[n] {
		return 0
	}
	onPath[n] = true
	longest := 0
	for _, m := range r.unblocks[n] {
		longest = max(longest, r.chainOf(m, onPath))
	}
	delete(onPath, n)
	r.chain[n] = longest + 1
	return longest + 1
}

// byChain orders containers whose turn has come: longest chain first, then by name.
func (r *runner) byChain(names []string) {
	slices.SortFunc(names, func(a, b string) int {
		if r.chain[a] != r.chain[b] {
			return r.chain[b] - r.chain[a]
		}
		return strings.Compare(a, b)
	})
}

func (r *runner) loop(ctx context.Context) map[string]Outcome {
	var first []string
	for _, n := range r.Graph.names {
		if r.pending[n] == 0 {
			first = append(first, n)
		}
	}
	queue := r.enqueue(nil, first)
	results := make(chan finished)
	running := 0
	for {
		for len(queue) > 0 && (running < r.Parallel || r.skipping(ctx, queue[0])) {
			n := queue[0]
			queue = queue[1:]
			if reason := r.skipReason(ctx, n); reason != "" {
				r.skip(n, reason)
				queue = r.enqueue(queue, r.done(n))
				continue
			}
			running++
			go func() { results <- finished{n, r.Step(ctx, n)} }()
		}
		if running == 0 {
			break
		}
		f := <-results
		running--
		r.outcomes[f.name] = Outcome{Err: f.err}
		queue = r.enqueue(queue, r.done(f.name))
	}
	r.skipStuck()
	return r.outcomes
}

// skipping tells whether n will be skipped when its turn comes: a skip
// takes no slot of Parallel.
func (r *runner) skipping(ctx context.Context, n string) bool { return r.skipReason(ctx, n) != "" }

func (r *runner) skipReason(ctx context.Context, n string) string {
	if reason := r.blocked[n]; reason != "" {
		return reason
	}
	if ctx.Err() != nil {
		return "interrupted before its turn: " + ctx.Err().Error()
	}
	return ""
}

func (r *runner) skip(n, reason string) {
	r.outcomes[n] = Outcome{Skipped: reason}
	if r.Skip != nil {
		r.Skip(n, reason)
	}
}

// done records that n's turn is over and returns the containers whose turn
// comes now. Unless KeepGoing, a failed or skipped n blocks those waiting for it.
func (r *runner) done(n string) []string {
	var next []string
	o := r.outcomes[n]
	for _, m := range r.unblocks[n] {
		if !o.OK() && !r.KeepGoing && r.blocked[m] == "" {
			what := "failed"
			if o.Skipped != "" {
				what = "was skipped"
			}
			r.blocked[m] = fmt.Sprintf("it starts after %s, which %s", n, what)
		}
		r.pending[m]--
		if r.pending[m] == 0 {
			next = append(next, m)
		}
	}
	return next
}

// enqueue adds containers whose turn has come to the queue, keeping it in
// byChain order.
func (r *runner) enqueue(queue, names []string) []string {
	queue = append(queue, names...)
	r.byChain(queue)
	return queue
}

// skipStuck skips the containers whose turn never came: they are in a
// cycle, or wait for one that is.
func (r *runner) skipStuck() {
	var stuck []string
	for _, n := range r.Graph.names {
		if _, ok := r.outcomes[n]; !ok {
			stuck = append(stuck, n)
		}
	}
	if len(stuck) == 0 {
		return
	}
	reason := "boot.after has a cycle"
	if c := r.Graph.Sub(stuck).Cycle(); c != nil {
		reason = "boot.after has a cycle (" + FormatCycle(c) + ") that it is in or waits for"
	}
	for _, n := range stuck {
		r.skip(n, reason)
	}
}
