package metrics

import (
	"context"
	"time"

	"lodge/internal/events"
)

// Record feeds the duration histograms from the host's event log until ctx
// ends: every checkpoint and migration on this host is an event with its
// duration, whichever process did it (a shell's lodge, this serve, a
// remote's request), so the histograms count them all, from the moment
// Record starts. It returns ctx's error, or the log's if following fails.
func (m *Metrics) Record(ctx context.Context, log *events.Log) error {
	return log.Follow(ctx, time.Time{}, func(e events.Event) error {
		m.observe(e)
		return nil
	})
}

// observe records one event's duration in its histogram, if it has one. A
// migrated event without a duration (the commit of a held copy, after the
// target's serve restarted or by an operator's unfreeze) is not a sample.
func (m *Metrics) observe(e events.Event) {
	if e.DurationMS <= 0 {
		return
	}
	d := time.Duration(e.DurationMS * float64(time.Millisecond))
	switch e.Type {
	case events.Checkpointed:
		m.ObserveCheckpoint(d)
	case events.Migrated:
		direction := DirectionOut
		if e.Direction == events.DirectionIn {
			direction = DirectionIn
		}
		m.ObserveMigration(direction, d)
	}
}
