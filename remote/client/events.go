package client

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"lodge/internal/events"
	"lodge/remote/api"
)

// Events follows the remote host's event log (api.RouteEvents), calling
// handle with each event that passes filter: those since since (zero: from
// now on), then each as it happens, until ctx ends (it returns ctx's
// error), handle fails (its error), or the host ends the stream.
func (c *Client) Events(ctx context.Context, since time.Time, filter events.Filter, handle func(events.Event) error) error {
	method, path := api.Request(api.RouteEvents, "")
	q := url.Values{}
	if !since.IsZero() {
		q.Set(api.EventsSince, since.UTC().Format(time.RFC3339Nano))
	}
	for _, t := range filter.Types {
		q.Add(api.EventsType, string(t))
	}
	for _, name := range filter.Containers {
		q.Add(api.EventsContainer, name)
	}
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, "https://"+c.remote.Address+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return c.connectError(err)
	}
	defer resp.Body.Close()
	return c.readEvents(ctx, resp, handle)
}

// readEvents reads an event stream's lines until it ends.
func (c *Client) readEvents(ctx context.Context, resp *http.Response, handle func(events.Event) error) error {
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		var line api.Line // an event, or the error that ends the stream
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return c.protocolError(resp, err)
		}
		switch {
		case line.Error != nil:
			return fmt.Errorf("%s: %w", c.remote.Name, line.Error.Err())
		case line.Event != nil:
			if err := handle(*line.Event); err != nil {
				return err
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := sc.Err(); err != nil {
		return c.connectError(err)
	}
	return fmt.Errorf("remote %s (%s) ended the event stream (its lodge serve stopped?): %w", c.remote.Name, c.remote.Address, io.ErrUnexpectedEOF)
}
