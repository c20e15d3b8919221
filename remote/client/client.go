// Package client talks to other hosts' lodge serve: it adds remotes (a
// client certificate per remote, trusted by redeeming a token) and calls
// the manager's operations on them, giving back the manager's errors.
package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"lodge/manager"
	"lodge/remote/api"
	"lodge/remote/pki"
	"lodge/remote/trust"
)

// Client calls one remote host's API.
type Client struct {
	remote Remote
	http   *http.Client
}

// Open returns a client for the remote named name of a lodge root.
func Open(root, name string) (*Client, error) {
	r, cert, err := Load(root, name)
	if err != nil {
		return nil, err
	}
	return newClient(r, cert), nil
}

// Remote is the remote this client calls.
func (c *Client) Remote() Remote { return c.remote }

func newClient(r Remote, cert pki.Pair) *Client {
	transport := &http.Transport{
		TLSClientConfig:     tlsConfig(r.Address, r.Fingerprint, cert),
		DialContext:         (&net.Dialer{Timeout: 15 * time.Second}).DialContext,
		TLSHandshakeTimeout: 15 * time.Second,
	}
	return &Client{remote: r, http: &http.Client{Transport: transport}}
}

// FingerprintError is a host that presented another certificate than the
// one pinned.
type FingerprintError struct {
	Address, Got, Want string
}

func (e *FingerprintError) Error() string {
	return fmt.Sprintf("the host at %s presented the certificate %s, not %s: a wrong address or token, or someone in between; nothing was sent", e.Address, e.Got, e.Want)
}

// tlsConfig is TLS 1.3 presenting cert and accepting only the server
// certificate whose fingerprint is want. The chain is not verified (the
// certificates are self-signed): the pinned fingerprint is the check.
func tlsConfig(addr, want string, cert pki.Pair) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		Certificates:       []tls.Certificate{cert.TLS},
		InsecureSkipVerify: true, // verified by VerifyConnection below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return &FingerprintError{Address: addr, Got: "none", Want: want}
			}
			if got := pki.Fingerprint(cs.PeerCertificates[0].Raw); got != want {
				return &FingerprintError{Address: addr, Got: got, Want: want}
			}
			return nil
		},
	}
}

// Add redeems token at the host at addr and saves it as the remote name:
// it checks the host's certificate against the token's fingerprint before
// sending anything, makes a client certificate, and presents it with the
// token's secret.
func Add(ctx context.Context, root, name, addr, token string) (Remote, error) {
	if err := api.CheckName("remote", name); err != nil {
		return Remote{}, err
	}
	tok, err := trust.DecodeToken(token)
	if err != nil {
		return Remote{}, err
	}
	if _, _, err := Load(root, name); err == nil {
		return Remote{}, api.Mark(fmt.Errorf("a remote named %q exists (lodge remote remove %s first)", name, name), manager.ErrExists)
	} else if !errors.Is(err, manager.ErrNotFound) {
		return Remote{}, err
	}
	tmp, cert, err := prepare(root, name)
	if err != nil {
		return Remote{}, err
	}
	defer os.RemoveAll(tmp) // renamed away on success
	r := Remote{Name: name, Address: api.HostPort(addr), Fingerprint: tok.Fingerprint, Added: time.Now().UTC()}
	hostname, _ := os.Hostname()
	var res api.RedeemResult
	if err := newClient(r, cert).do(ctx, api.RouteRedeem, "", api.RedeemRequest{Secret: tok.Secret, ClientName: hostname}, &res, nil); err != nil {
		return Remote{}, err
	}
	r.TrustedAs = res.Name
	return r, commit(root, tmp, r)
}

// do sends one request to route (for the container name, if the route
// names one) and reads its response (api.Line), passing progress lines to
// progress (nil: dropped) and the result into out.
func (c *Client) do(ctx context.Context, route, name string, body, out any, progress func(format string, args ...any)) error {
	method, path := api.Request(route, name)
	var reqBody io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		reqBody = bytes.NewReader(data)
	}
	return c.send(ctx, method, path, "application/json", reqBody, out, progress)
}

// send sends one request with body (nil: none) as it reads it, streamed,
// and reads its response as do does.
func (c *Client) send(ctx context.Context, method, path, contentType string, body io.Reader, out any, progress func(format string, args ...any)) error {
	req, err := http.NewRequestWithContext(ctx, method, "https://"+c.remote.Address+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := c.http.Do(req)
	if err != nil {
		return c.connectError(err)
	}
	defer resp.Body.Close()
	return c.readLines(resp, out, progress)
}

// connectError explains a failed connection, keeping a fingerprint
// mismatch's own message.
func (c *Client) connectError(err error) error {
	var fpErr *FingerprintError
	if errors.As(err, &fpErr) {
		return fpErr
	}
	return fmt.Errorf("remote %s (%s): %w", c.remote.Name, c.remote.Address, err)
}

func (c *Client) readLines(resp *http.Response, out any, progress func(format string, args ...any)) error {
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 64<<20)
	for sc.Scan() {
		var line struct {
			Progress string          `json:"progress"`
			Result   json.RawMessage `json:"result"`
			Error    *api.Error      `json:"error"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return c.protocolError(resp, err)
		}
		switch {
		case line.Error != nil:
			return fmt.Errorf("%s: %w", c.remote.Name, line.Error.Err())
		case line.Result != nil:
			if out == nil {
				return nil
			}
			return json.Unmarshal(line.Result, out)
		case progress != nil:
			progress("%s", line.Progress)
		}
	}
	if err := sc.Err(); err != nil {
		return c.connectError(err)
	}
	return c.protocolError(resp, io.ErrUnexpectedEOF)
}

func (c *Client) protocolError(resp *http.Response, err error) error {
	return fmt.Errorf("remote %s (%s) answered %s: %w (%v)", c.remote.Name, c.remote.Address, resp.Status, api.ErrProtocol, err)
}
