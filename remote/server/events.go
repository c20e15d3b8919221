package server

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"lodge/internal/events"
	"lodge/manager"
	"lodge/remote/api"
)

// events streams the host's event log (api.RouteEvents) until the client
// goes away (its request's context ends: net/http reads the connection in
// the background and cancels it when the client closes), a write fails,
// or the server shuts down. While it waits it holds one inotify watch and
// a ticker, nothing else: a follower reads the log from disk.
func (s *Server) events(w http.ResponseWriter, r *http.Request, client string) {
	filter, since, err := eventsQuery(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	select {
	case s.eventStreams <- struct{}{}:
		defer func() { <-s.eventStreams }()
	default:
		writeError(w, http.StatusServiceUnavailable, fmt.Errorf("this host already serves %d event streams, its most: try again later, or follow it from fewer clients", maxEventStreams))
		return
	}
	m, err := s.open(s.root)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(s.shutdown, cancel)
	defer stop()
	stream := newStream(w)
	stream.flush() // the client knows the stream is on
	// A client that stops reading (but keeps its connection) would block a
	// write, and so this handler, forever: each line must go out in time.
	rc := http.NewResponseController(w)
	err = m.Events().Follow(ctx, since, func(e events.Event) error {
		if !filter.Match(e) {
			return nil
		}
		if err := rc.SetWriteDeadline(time.Now().Add(eventWriteTimeout)); err != nil {
			return err
		}
		return stream.writeErr(api.Line{Event: &e})
	})
	if ctx.Err() == nil && err != nil {
		stream.finish(nil, err)
	}
	s.log.Info("event stream ended", "client", client, "error", errString(err))
}

// maxEventStreams is how many event streams a server serves at once: each
// holds an inotify instance (of 128 per user by default, shared with every
// other follower of root's) and a goroutine.
const maxEventStreams = 32

// eventWriteTimeout is how long one event's line may take to reach a
// client before its stream is ended.
const eventWriteTimeout = 30 * time.Second

// eventsQuery parses RouteEvents' query (api.EventsQuery).
func eventsQuery(r *http.Request) (events.Filter, time.Time, error) {
	q := r.URL.Query()
	var since time.Time
	if v := q.Get(api.EventsSince); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return events.Filter{}, since, api.Mark(fmt.Errorf("since=%q: %w", v, err), manager.ErrInvalid)
		}
		since = t
	}
	types, err := events.ParseTypes(q[api.EventsType])
	if err != nil {
		return events.Filter{}, since, api.Mark(err, manager.ErrInvalid)
	}
	return events.Filter{Types: types, Containers: q[api.EventsContainer]}, since, nil
}
