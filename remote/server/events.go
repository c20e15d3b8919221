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
	err = m.Events().Follow(ctx, since, func(e events.Event) error {
		if !filter.Match(e) {
			return nil
		}
		return stream.writeErr(api.Line{Event: &e})
	})
	if ctx.Err() == nil && err != nil {
		stream.finish(nil, err)
	}
	s.log.Info("event stream ended", "client", client, "error", errString(err))
}

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
