package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"lodge/metrics"
	"lodge/remote/api"
	"lodge/remote/server"
)

func newServeCmd(a *app) *cobra.Command {
	var listen, metricsAddr string
	cmd := &cobra.Command{
		Use:   "serve --listen ADDR [--metrics ADDR]",
		Short: "Serve this host's containers to trusted hosts over HTTPS (mutual TLS), and metrics",
		Long: `Serve the host API on ADDR (HOST:PORT; port 8443 if none) over HTTPS with mutual
TLS 1.3. The host certificate is made on first use (ROOT/host); every request
must come with a client certificate that the trust store holds (lodge trust add,
lodge remote add), except the one that redeems a token. Nothing listens unless
lodge serve runs. Containers do not depend on it: stopping, killing or restarting
it never touches one. It logs each request on stderr and stops on SIGINT or SIGTERM.

With --metrics ADDR it also serves Prometheus metrics of the containers at
http://ADDR/metrics (docs/monitoring.md), over plain HTTP without
authentication: keep ADDR on localhost or behind a proxy that authenticates.
--metrics without --listen serves the metrics alone.`,
		Example: `  lodge serve --listen 10.0.0.1:8443
  lodge serve --listen 10.0.0.1:8443 --metrics 127.0.0.1:9177`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if listen == "" && metricsAddr == "" {
				return usageError{"serve needs --listen ADDR (the address to serve on, e.g. 10.0.0.1:8443), or --metrics ADDR"}
			}
			m, err := a.manager()
			if err != nil {
				return err // root and a valid host config, before anything listens
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			var metricsDone <-chan error
			if metricsAddr != "" {
				mx := metrics.New(m)
				go func() {
					if err := mx.Record(ctx, m.Events()); err != nil && ctx.Err() == nil {
						fmt.Fprintf(a.stderr, "lodge: metrics: the checkpoint and migration histograms stopped: %v\n", err)
					}
				}()
				if metricsDone, err = serveMetrics(ctx, a, mx, metricsAddr); err != nil {
					return err
				}
			}
			if listen == "" {
				return <-metricsDone
			}
			return serveAPI(ctx, a, listen)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "", "address to serve the API on, HOST:PORT (port 8443 if none)")
	cmd.Flags().StringVar(&metricsAddr, "metrics", "", "address to serve Prometheus metrics on, HOST:PORT (plain HTTP, unauthenticated)")
	return cmd
}

// serveAPI serves the host API on listen until ctx ends.
func serveAPI(ctx context.Context, a *app, listen string) error {
	srv, err := server.New(a.root, version, slog.New(slog.NewTextHandler(a.stderr, nil)))
	if err != nil {
		return err
	}
	// What a previous serve killed mid-migration left: staging
	// directories and id ranges of dead receivers go, begun commits
	// are finished, restored copies stay held for their sources.
	if err := srv.RecoverMigrations(); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", api.HostPort(listen))
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "Serving on %s (host certificate %s)\n", ln.Addr(), srv.Fingerprint())
	return srv.Serve(ctx, ln)
}
