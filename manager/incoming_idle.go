package manager

import (
	"sync"
	"time"
)

// DefaultReceiveIdle is how long a migration or a copy being received here
// waits for its source's next call before it is removed (Manager.ReceiveIdle).
// The calls follow each other at once (a stream in progress counts as a
// call; between a migration's live tree and its checkpoint the source
// dumps, for seconds), so a source that does not call for this long is
// dead, or gave up without a word: without the timer its staging
// directory and id range would stay held by the live receiver until its
// server restarts (RecoverMigrations skips what a live receiver holds).
const DefaultReceiveIdle = 2 * time.Minute

// receiveIdle is this manager's idle limit for incoming migrations and copies.
func (m *Manager) receiveIdle() time.Duration {
	if m.ReceiveIdle > 0 {
		return m.ReceiveIdle
	}
	return DefaultReceiveIdle
}

// idleTimer removes an incoming migration or copy whose source has not
// called for its limit. Calls are bracketed by call's begin and end; stop
// ends the timer for good (the restore or the finish has begun: from there
// the source's Commit or Abort decides).
type idleTimer struct {
	limit time.Duration

	mu      sync.Mutex
	busy    int       // calls in progress
	last    time.Time // when the last call ended
	timer   *time.Timer
	stopped bool
}

// newIdle is the idle timer of a new incoming migration or copy, not
// started yet.
func (m *Manager) newIdle() *idleTimer { return &idleTimer{limit: m.receiveIdle()} }

// start starts the timer; expire runs once the source has not called for
// the limit.
func (t *idleTimer) start(expire func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.last = time.Now()
	if !t.stopped {
		t.timer = time.AfterFunc(t.limit, expire)
	}
}

// call marks a call of the source begun; the returned func ends it.
func (t *idleTimer) call() (end func()) {
	if t == nil {
		return func() {}
	}
	t.mu.Lock()
	t.busy++
	t.mu.Unlock()
	return func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		t.busy--
		t.last = time.Now()
		if !t.stopped && t.timer != nil {
			t.timer.Reset(t.limit)
		}
	}
}

// stop ends the timer for good.
func (t *idleTimer) stop() {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped = true
	if t.timer != nil {
		t.timer.Stop()
	}
}

// idle says whether no call runs and none came for the limit.
func (t *idleTimer) idle() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return !t.stopped && t.timer != nil && t.busy == 0 && time.Since(t.last) >= t.limit
}

// expireIncoming removes an incoming migration or copy whose source has
// not called for the idle limit: its staging directory, its id range and
// the layers nothing uses go, as with the source's Abort. Checked again
// under in's lock: a call that began meanwhile keeps it.
func (m *Manager) expireIncoming(name string, in *incoming) {
	if !in.idle.idle() {
		return // a call runs, and resets the timer as it ends
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if !in.idle.idle() {
		return
	}
	if v, ok := incomings.Load(m.incomingKey(name)); !ok || v != in || in.moved {
		return
	}
	m.abortLocked(in)
	if v, ok := incomingCopies.Load(m.incomingKey(name)); ok && v.(*incomingCopy).in == in {
		incomingCopies.CompareAndDelete(m.incomingKey(name), v)
	}
}
