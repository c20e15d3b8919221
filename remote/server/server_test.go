package server

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"lodge/internal/events"
	"lodge/manager"
	"lodge/remote/api"
	"lodge/remote/client"
	"lodge/remote/trust"
)

// serve runs a server for a fresh root on a loopback port. Its manager
// cannot be opened (as for a lodge serve not run as root), which is enough
// for everything but the containers: the error's kind must cross the wire.
func serve(t *testing.T) (*Server, string) {
	t.Helper()
	root := t.TempDir()
	srv, err := New(root, "test", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv.open = func(string) (*manager.Manager, error) { return nil, manager.ErrNotRoot }
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return srv, ln.Addr().String()
}

func TestAddRemoteAndCall(t *testing.T) {
	srv, addr := serve(t)
	tok, err := trust.Open(srv.root).AddToken("h1", time.Hour, srv.Fingerprint())
	if err != nil {
		t.Fatal(err)
	}
	clientRoot := t.TempDir()
	ctx := context.Background()
	r, err := client.Add(ctx, clientRoot, "h2", addr, tok.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if r.TrustedAs != "h1" || r.Fingerprint != srv.Fingerprint() {
		t.Fatalf("added %+v", r)
	}
	if _, err := client.Add(ctx, clientRoot, "h3", addr, tok.Encode()); !errors.Is(err, api.ErrTokenUsed) {
		t.Fatalf("second use: %v", err)
	}
	if _, err := client.Add(ctx, clientRoot, "h2", addr, tok.Encode()); !errors.Is(err, manager.ErrExists) {
		t.Fatalf("a remote added twice: %v", err)
	}
	c, err := client.Open(clientRoot, "h2")
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Server(ctx)
	if err != nil || info.Client != "h1" || info.API != api.Version {
		t.Fatalf("server info %+v, %v", info, err)
	}
	// The manager's error comes back with its kind and the remote's name.
	if _, err := c.List(ctx); !errors.Is(err, manager.ErrNotRoot) || !strings.HasPrefix(err.Error(), "h2: ") {
		t.Fatalf("List with a manager that cannot open: %v", err)
	}
	if err := trust.Open(srv.root).Remove("h1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Server(ctx); !errors.Is(err, api.ErrNotTrusted) {
		t.Fatalf("after trust remove: %v", err)
	}
	if remotes, _ := client.List(clientRoot); len(remotes) != 1 || remotes[0].Name != "h2" {
		t.Fatalf("remotes %+v", remotes)
	}
	if err := client.Remove(clientRoot, "h2"); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Open(clientRoot, "h2"); !errors.Is(err, manager.ErrNotFound) {
		t.Fatalf("a removed remote: %v", err)
	}
}

func TestFingerprintPinned(t *testing.T) {
	srv, addr := serve(t)
	other, _ := serve(t)
	tok, err := trust.Open(other.root).AddToken("", time.Hour, other.Fingerprint())
	if err != nil {
		t.Fatal(err)
	}
	_, err = client.Add(context.Background(), t.TempDir(), "h2", addr, tok.Encode())
	var fpErr *client.FingerprintError
	if !errors.As(err, &fpErr) || fpErr.Got != srv.Fingerprint() {
		t.Fatalf("a token for another host: %v", err)
	}
	if l, _ := trust.Open(other.root).List(); len(l.Tokens) != 1 {
		t.Fatal("the token was spent though its host was never reached")
	}
}

func TestClientWithoutCertificate(t *testing.T) {
	_, addr := serve(t)
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
	if err == nil {
		defer conn.Close()
		conn.Write([]byte("GET /1.0 HTTP/1.1\r\nHost: x\r\n\r\n"))
		_, err = conn.Read(make([]byte, 1))
	}
	if err == nil || !strings.Contains(err.Error(), "certificate required") {
		t.Fatalf("a client without a certificate: %v", err)
	}
}

// A server that serves its most event streams refuses one more, saying so,
// and serves again once one ends.
func TestEventStreamsBounded(t *testing.T) {
	srv, addr := serve(t)
	tok, err := trust.Open(srv.root).AddToken("h1", time.Hour, srv.Fingerprint())
	if err != nil {
		t.Fatal(err)
	}
	clientRoot := t.TempDir()
	ctx := context.Background()
	if _, err := client.Add(ctx, clientRoot, "h2", addr, tok.Encode()); err != nil {
		t.Fatal(err)
	}
	c, err := client.Open(clientRoot, "h2")
	if err != nil {
		t.Fatal(err)
	}
	for range maxEventStreams {
		srv.eventStreams <- struct{}{} // streams being served
	}
	ignore := func(events.Event) error { return nil }
	if err := c.Events(ctx, time.Time{}, events.Filter{}, ignore); err == nil || !strings.Contains(err.Error(), "event streams") {
		t.Fatalf("one stream too many: %v, want a refusal", err)
	}
	<-srv.eventStreams
	// Past the bound, the request reaches the manager (which this server
	// cannot open).
	if err := c.Events(ctx, time.Time{}, events.Filter{}, ignore); !errors.Is(err, manager.ErrNotRoot) {
		t.Fatalf("a stream within the bound: %v, want the manager's error", err)
	}
}
