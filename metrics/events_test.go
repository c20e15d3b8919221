package metrics

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"lodge/internal/events"
)

// Record counts the checkpoints and migrations another process writes to the
// event log after it starts, each in its histogram, and nothing else.
func TestRecordFromEventLog(t *testing.T) {
	log := events.Open(t.TempDir())
	m := New(fixedUsage{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Record(ctx, log) }()
	t.Cleanup(func() { cancel(); <-done })

	// Record follows from the moment it starts: append until the first
	// checkpoint is counted, then the rest once.
	appendEvent := func(e events.Event) {
		e.Time = time.Now()
		if err := log.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for sampleCount(t, m, `lodge_checkpoint_duration_seconds_count `) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no checkpoint event counted within 10s")
		}
		appendEvent(events.Event{Type: events.Checkpointed, Container: "c", DurationMS: 1500})
		time.Sleep(50 * time.Millisecond)
	}
	appendEvent(events.Event{Type: events.Started, Container: "c"})
	appendEvent(events.Event{Type: events.Migrated, Container: "held", Direction: events.DirectionIn}) // a commit: no duration
	appendEvent(events.Event{Type: events.Migrated, Container: "c", Direction: events.DirectionIn, DurationMS: 2000})
	appendEvent(events.Event{Type: events.Migrated, Container: "c", Direction: events.DirectionOut, DurationMS: 250})
	for sampleCount(t, m, `lodge_migration_duration_seconds_count{direction="out"} `) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the migrations were not counted within 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := sampleCount(t, m, `lodge_migration_duration_seconds_count{direction="in"} `); n != 1 {
		t.Errorf("%d migrations in counted, want 1", n)
	}
	if sum := sample(t, m, `lodge_migration_duration_seconds_sum{direction="out"} `); sum != "0.25" {
		t.Errorf("migration out sum = %s s, want 0.25", sum)
	}
}

// sample is the value of the duration histograms' line starting with
// prefix, "" if there is none.
func sample(t *testing.T, m *Metrics, prefix string) string {
	t.Helper()
	var text []byte
	for _, c := range []prometheus.Collector{m.checkpoint, m.migration} {
		b, err := testutil.CollectAndFormat(c, expfmt.TypeTextPlain, "lodge_checkpoint_duration_seconds", "lodge_migration_duration_seconds")
		if err != nil {
			t.Fatal(err)
		}
		text = append(text, b...)
	}
	for _, line := range strings.Split(string(text), "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			return v
		}
	}
	return ""
}

// sampleCount is sample as a count, 0 if there is none.
func sampleCount(t *testing.T, m *Metrics, prefix string) int {
	t.Helper()
	n, _ := strconv.Atoi(sample(t, m, prefix))
	return n
}
