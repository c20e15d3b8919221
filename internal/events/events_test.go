package events

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// follow runs Follow in a goroutine and returns the events it hands over.
func follow(t *testing.T, l *Log, since time.Time) (<-chan Event, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan Event, 100000)
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- l.follow(ctx, since, func(e Event) error { got <- e; return nil }, func() { close(started) })
	}()
	<-started
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Follow: %v", err)
		}
	})
	return got, cancel
}

func next(t *testing.T, got <-chan Event) Event {
	t.Helper()
	select {
	case e := <-got:
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10 s")
		return Event{}
	}
}

func TestFollowFromNow(t *testing.T) {
	l := Open(t.TempDir())
	if err := l.Append(Event{Type: Created, Container: "old"}); err != nil {
		t.Fatal(err)
	}
	got, _ := follow(t, l, time.Time{})
	if err := l.Append(Event{Type: Started, Container: "c1"}); err != nil {
		t.Fatal(err)
	}
	if e := next(t, got); e.Type != Started || e.Container != "c1" {
		t.Fatalf("got %+v, want the started event of c1 (not the one before the follow)", e)
	}
}

// TestFollowSurvivesRotation: with a log rotated every dozen events, a
// follower sees every event of three concurrent writers once, each
// writer's in its order. The writers stay at most half a file ahead of the
// follower (one more than a rotation behind loses events, as documented),
// so rotations come while the follower has lines left in the old file.
func TestFollowSurvivesRotation(t *testing.T) {
	l := &Log{Dir: t.TempDir(), Limit: 1024}
	got, _ := follow(t, l, time.Time{})
	const writers, each, ahead = 3, 300, 6
	tokens := make(chan struct{}, ahead)
	for i := 0; i < ahead; i++ {
		tokens <- struct{}{}
	}
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				<-tokens
				if err := l.Append(Event{Type: OOM, Container: fmt.Sprintf("w%d", w), Count: uint64(i + 1)}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	last := map[string]uint64{}
	for n := 0; n < writers*each; n++ {
		e := next(t, got)
		if e.Count != last[e.Container]+1 {
			t.Fatalf("event %d: %s's count %d after %d: lost, repeated or out of order", n, e.Container, e.Count, last[e.Container])
		}
		last[e.Container] = e.Count
		tokens <- struct{}{}
	}
	wg.Wait()
	select {
	case e := <-got:
		t.Fatalf("an event more than written: %+v", e)
	case <-time.After(100 * time.Millisecond):
	}
	if _, err := os.Stat(filepath.Join(l.Dir, previousName)); err != nil {
		t.Fatalf("the log was never rotated: %v", err)
	}
	// Writers appending at once may each take the file past the limit
	// by their line.
	for _, name := range []string{currentName, previousName} {
		if fi, err := os.Stat(filepath.Join(l.Dir, name)); err == nil && fi.Size() > l.Limit+writers*128 {
			t.Errorf("%s is %d bytes, past the limit %d", name, fi.Size(), l.Limit)
		}
	}
}

// TestFollowSince replays what both files hold since a time, then follows.
func TestFollowSince(t *testing.T) {
	l := &Log{Dir: t.TempDir(), Limit: 600}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 8; i++ { // several rotations: only the last two files remain
		if err := l.Append(Event{Time: base.Add(time.Duration(i) * time.Minute), Type: Started, Container: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	kept := countLines(t, l)
	got, _ := follow(t, l, base.Add(5*time.Minute))
	for i := 5; i < 8; i++ {
		if e := next(t, got); e.Container != fmt.Sprint(i) {
			t.Fatalf("replay: got %q, want %d (the log kept %d events)", e.Container, i, kept)
		}
	}
	if err := l.Append(Event{Type: Stopped, Container: "live", Reason: ReasonRequested}); err != nil {
		t.Fatal(err)
	}
	if e := next(t, got); e.Container != "live" || e.Reason != ReasonRequested {
		t.Fatalf("after the replay: got %+v", e)
	}
}

func countLines(t *testing.T, l *Log) int {
	n := 0
	for _, name := range []string{currentName, previousName} {
		data, _ := os.ReadFile(filepath.Join(l.Dir, name))
		for _, c := range data {
			if c == '\n' {
				n++
			}
		}
	}
	return n
}

func TestFollowEndsWithHandlerError(t *testing.T) {
	l := Open(t.TempDir())
	l.Append(Event{Type: Created, Container: "a"})
	boom := errors.New("client gone")
	err := l.Follow(context.Background(), time.Unix(1, 0), func(Event) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("Follow returned %v, want the handler's error", err)
	}
}

func TestParseTypes(t *testing.T) {
	got, err := ParseTypes([]string{"started,stopped", "oom"})
	if err != nil || len(got) != 3 || got[2] != OOM {
		t.Fatalf("ParseTypes: %v, %v", got, err)
	}
	if _, err := ParseTypes([]string{"begun"}); err == nil {
		t.Fatal("an unknown type was accepted")
	}
}

func TestEventString(t *testing.T) {
	e := Event{Time: time.Unix(0, 0), Type: Stopped, Container: "web", Reason: ReasonExited, ExitStatus: Status(0)}
	s := e.String()
	for _, part := range []string{"stopped", "web", "reason=exited", "exit_status=0"} {
		if !strings.Contains(s, part) {
			t.Fatalf("String: %q lacks %q", s, part)
		}
	}
}

func BenchmarkAppend(b *testing.B) {
	l := Open(b.TempDir())
	for i := 0; i < b.N; i++ {
		if err := l.Append(Event{Type: Started, Container: "bench"}); err != nil {
			b.Fatal(err)
		}
	}
}
