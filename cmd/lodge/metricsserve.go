package main

import (
	"context"
	"fmt"
	"net"

	"lodge/metrics"
)

// serveMetrics listens on addr now (so that a taken port fails serve at
// once) and serves mx there until ctx ends; the channel gets the server's
// end.
func serveMetrics(ctx context.Context, a *app, mx *metrics.Metrics, addr string) (<-chan error, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("serve metrics on %s: %w", addr, err)
	}
	fmt.Fprintf(a.stdout, "Serving metrics on http://%s/metrics\n", ln.Addr())
	done := make(chan error, 1)
	go func() {
		err := mx.Serve(ctx, ln)
		if err != nil {
			fmt.Fprintf(a.stderr, "lodge: metrics server: %v\n", err)
		}
		done <- err
	}()
	return done, nil
}
