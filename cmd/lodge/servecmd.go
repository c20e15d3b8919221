package main

import (
	"fmt"
	"log/slog"
	"net"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"lodge/remote/api"
	"lodge/remote/server"
)

func newServeCmd(a *app) *cobra.Command {
	var listen string
	cmd := &cobra.Command{
		Use:   "serve --listen ADDR",
		Short: "Serve this host's containers to trusted hosts over HTTPS (mutual TLS)",
		Long: `Serve the host API on ADDR (HOST:PORT; port 8443 if none) over HTTPS with mutual
TLS 1.3. The host certificate is made on first use (ROOT/host); every request
must come with a client certificate that the trust store holds (lodge trust add,
lodge remote add), except the one that redeems a token. Nothing listens unless
lodge serve runs. Containers do not depend on it: stopping, killing or restarting
it never touches one. It logs each request on stderr and stops on SIGINT or SIGTERM.`,
		Example: `  lodge serve --listen 10.0.0.1:8443`,
		Args:    exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if listen == "" {
				return usageError{"serve needs --listen ADDR (the address to serve on, e.g. 10.0.0.1:8443)"}
			}
			if _, err := a.manager(); err != nil {
				return err // root and a valid host config, before anything listens
			}
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
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			fmt.Fprintf(a.stdout, "Serving on %s (host certificate %s)\n", ln.Addr(), srv.Fingerprint())
			return srv.Serve(ctx, ln)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "", "address to serve on, HOST:PORT (port 8443 if none)")
	return cmd
}
