// Package server is lodge serve: the host API over HTTPS with mutual TLS.
// It calls package manager as a library, a fresh Manager per request (one
// kept Manager for the migration routes: see migrations.go), and owns no
// container: containers run under their monitors whether or not
// lodge serve runs, so its crash or restart never touches them.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"lodge/manager"
	"lodge/remote/api"
	"lodge/remote/pki"
	"lodge/remote/trust"
)

// HostCertDir is where a lodge root keeps its host certificate,
// ROOT/host/{cert.pem,key.pem}, made on first use.
func HostCertDir(root string) string { return filepath.Join(root, "host") }

// HostCert loads the root's host certificate, making it on first use.
func HostCert(root string) (pki.Pair, error) {
	hostname, _ := os.Hostname()
	return pki.LoadOrCreate(HostCertDir(root), "lodge host "+hostname)
}

// Server serves one lodge root.
type Server struct {
	root    string
	version string // lodge's, for ServerInfo
	cert    pki.Pair
	trust   *trust.Store
	log     *slog.Logger
	// open is manager.New, replaceable in tests.
	open func(root string) (*manager.Manager, error)
	// migrations is the one Manager of the migration routes.
	migrations *migrationManager
	// shutdown ends when Serve stops: event streams, which would
	// otherwise never end by themselves, end with it.
	shutdown   context.Context
	endStreams context.CancelFunc
	// eventStreams holds a token per event stream being served, and bounds
	// them.
	eventStreams chan struct{}
}

// New prepares a server for the lodge root: its host certificate (made on
// first start) and its trust store.
func New(root, version string, log *slog.Logger) (*Server, error) {
	cert, err := HostCert(root)
	if err != nil {
		return nil, err
	}
	s := &Server{root: root, version: version, cert: cert, trust: trust.Open(root), log: log, open: manager.New}
	s.shutdown, s.endStreams = context.WithCancel(context.Background())
	s.eventStreams = make(chan struct{}, maxEventStreams)
	s.migrations = &migrationManager{open: func(root string) (*manager.Manager, error) { return s.open(root) }, root: root}
	return s, nil
}

// RecoverMigrations cleans what receivers of migrations killed before their
// restore left here (a previous lodge serve's), and logs the restored
// containers it holds for their sources' word: serve calls it at start.
func (s *Server) RecoverMigrations() error {
	m, err := s.migrations.get()
	if err != nil {
		return err
	}
	for _, name := range m.RecoverMigrations() {
		s.log.Warn("a migrated container is held frozen, uncommitted: its source has not said whether it resumed its own copy (lodge list there: running, delete it here; gone, lodge unfreeze it here)", "container", name)
	}
	return nil
}

// Fingerprint is the host certificate's.
func (s *Server) Fingerprint() string { return s.cert.Fingerprint }

// TLSConfig is TLS 1.3 with the host certificate, requiring a client
// certificate: a client without one fails the handshake. Which
// certificates are trusted is checked per request (authenticate), against
// the trust store, so that redeeming a token can present a new one.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{s.cert.TLS},
		ClientAuth:   tls.RequireAnyClientCert,
	}
}

// Serve answers on ln until ctx ends, then shuts down (requests in flight
// get a few seconds; what they started goes on under the monitors).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		TLSConfig:         s.TLSConfig(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	done := make(chan error, 1)
	go func() { done <- srv.ServeTLS(ln, "", "") }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	s.endStreams()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(shutdownCtx)
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Handler routes the API; every route but RouteRedeem is authenticated,
// even one that does not exist.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(api.RouteRedeem, s.redeem)
	authed := func(route string, op operation) {
		mux.Handle(route, s.authenticate(op))
	}
	authed(api.RouteServer, s.serverInfo)
	authed(api.RouteList, list)
	authed(api.RouteInfo, info)
	authed(api.RouteStart, start)
	authed(api.RouteStop, stop)
	authed(api.RouteMigrationPreflight, migrationPreflight)
	authed(api.RouteMigrationLayer, migrationLayer)
	authed(api.RouteMigrationRootfs, migrationRootfs)
	authed(api.RouteMigrationCheckpoint, migrationCheckpoint)
	authed(api.RouteMigrationRestore, migrationRestore)
	authed(api.RouteMigrationCommit, migrationCommit)
	authed(api.RouteMigrationAbort, migrationAbort)
	authed(api.RouteCopyPreflight, copyPreflight)
	authed(api.RouteCopyLayer, copyLayer)
	authed(api.RouteCopyRootfs, copyRootfs)
	authed(api.RouteCopySnapshots, copySnapshots)
	authed(api.RouteCopyFinish, copyFinish)
	authed(api.RouteCopyOut, copyOut)
	mux.Handle(api.RouteEvents, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if client, ok := s.trustedClient(w, r); ok {
			s.events(w, r, client)
		}
	}))
	authed("/", func(c *call) (any, error) {
		return nil, fmt.Errorf("%s %s: no such API route (this host speaks API %s)", c.r.Method, c.r.URL.Path, api.Version)
	})
	return mux
}

// clientFingerprint is the fingerprint of the certificate the client
// presented (the handshake requires one).
func clientFingerprint(r *http.Request) (string, bool) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return "", false
	}
	return pki.Fingerprint(r.TLS.PeerCertificates[0].Raw), true
}

// call is one authenticated request, as an operation sees it.
type call struct {
	r *http.Request
	// ctx is the request's without its cancellation: an operation runs to
	// its end even if the client goes away, as the manager's do when the
	// CLI is interrupted.
	ctx    context.Context
	client string // the trusted client's name
	root   string
	open   func(root string) (*manager.Manager, error)
	// migrations is the server's one Manager for the migration routes.
	migrations func() (*manager.Manager, error)
	progress   func(format string, args ...any)
}

// manager opens the root's Manager for an operation that needs it.
func (c *call) manager() (*manager.Manager, error) { return c.open(c.root) }

// operation runs one request and returns its result.
type operation func(c *call) (any, error)

// authenticate runs op for a client the trust store trusts, streaming its
// progress (see api.Line).
func (s *Server) authenticate(op operation) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		begin := time.Now()
		name, ok := s.trustedClient(w, r)
		if !ok {
			return
		}
		stream := newStream(w)
		result, err := op(&call{r: r, ctx: context.WithoutCancel(r.Context()), client: name, root: s.root, open: s.open, migrations: s.migrations.get, progress: stream.progress})
		stream.finish(result, err)
		s.log.Info("request", "method", r.Method, "path", r.URL.Path, "client", name, "error", errString(err), "ms", time.Since(begin).Milliseconds())
	})
}

// trustedClient returns the name the trust store knows the request's
// client by, or answers the request with the refusal.
func (s *Server) trustedClient(w http.ResponseWriter, r *http.Request) (string, bool) {
	fp, ok := clientFingerprint(r)
	if !ok {
		writeError(w, http.StatusUnauthorized, api.Mark(errors.New("a client certificate is required"), api.ErrNotTrusted))
		return "", false
	}
	name, err := s.trust.Trusted(fp)
	if err != nil {
		s.log.Warn("refused", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "fingerprint", fp)
		writeError(w, http.StatusForbidden, err)
		return "", false
	}
	return name, true
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// redeem trusts the client certificate of this connection if the request
// carries a pending token's secret.
func (s *Server) redeem(w http.ResponseWriter, r *http.Request) {
	fp, ok := clientFingerprint(r)
	if !ok {
		writeError(w, http.StatusUnauthorized, api.Mark(errors.New("redeeming a token needs the client certificate to trust"), api.ErrNotTrusted))
		return
	}
	var req api.RedeemRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	name, err := s.trust.Redeem(req.Secret, fp, req.ClientName)
	if err != nil {
		s.log.Warn("token refused", "remote", r.RemoteAddr, "fingerprint", fp, "error", err.Error())
		writeError(w, http.StatusForbidden, err)
		return
	}
	s.log.Info("trusted a new client", "name", name, "fingerprint", fp, "remote", r.RemoteAddr)
	newStream(w).finish(api.RedeemResult{Name: name, Fingerprint: fp}, nil)
}

func (s *Server) serverInfo(c *call) (any, error) {
	return api.ServerInfo{API: api.Version, Version: s.version, Fingerprint: s.cert.Fingerprint, Client: c.client}, nil
}
