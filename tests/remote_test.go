package tests

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"lodge/remote/pki"
	"lodge/remote/trust"
)

// TestRemoteTrust: a token works once; a second use, an expired token, a
// token with a wrong secret or for another host, a client without a
// certificate (or with one the host does not trust) are all refused, with
// a message that says why; trust remove takes effect at once.
func TestRemoteTrust(t *testing.T) {
	hs := newTwoHosts(t)
	h1, h2 := hs.h1, hs.h2
	h2.startServe()

	token := strings.TrimSpace(h2.must("trust", "add", "--name", "h1"))
	h1.must("remote", "add", "h2", h2.endpoint(), "--token", token)
	h1.expectFail(1, "already used", "remote", "add", "again", h2.endpoint(), "--token", token)

	expiring := strings.TrimSpace(h2.must("trust", "add", "--expiry", "1s"))
	waitUntil(t, "the 1s token to expire", func() bool { return len(trustList(h2).Tokens) == 0 })
	h1.expectFail(1, "expired", "remote", "add", "late", h2.endpoint(), "--token", expiring)

	tok, err := trust.DecodeToken(strings.TrimSpace(h2.must("trust", "add")))
	if err != nil {
		t.Fatal(err)
	}
	tok.Secret = "not-" + tok.Secret
	h1.expectFail(1, "no such token", "remote", "add", "wrong", h2.endpoint(), "--token", tok.Encode())
	ofH1 := strings.TrimSpace(h1.must("trust", "add"))
	h1.expectFail(1, "presented the certificate", "remote", "add", "other", h2.endpoint(), "--token", ofH1)
	h1.expectFail(1, "not one lodge trust add printed", "remote", "add", "junk", h2.endpoint(), "--token", "hello")

	remotes := h1.must("remote", "list", "--format", "json")
	if strings.Count(remotes, `"name"`) != 1 || !strings.Contains(remotes, `"h2"`) {
		t.Fatalf("remotes after one good token and five bad: %s", remotes)
	}
	// The refused adds left nothing behind; the keys are root's alone.
	if entries, err := os.ReadDir(filepath.Join(h1.root, "remotes")); err != nil || len(entries) != 1 {
		t.Errorf("ROOT/remotes holds %v (%v), want h2 only", entries, err)
	}
	for _, key := range []string{filepath.Join(h1.root, "remotes", "h2", "key.pem"), filepath.Join(h2.root, "host", "key.pem")} {
		if fi, err := os.Stat(key); err != nil {
			t.Error(err)
		} else if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", key, fi.Mode().Perm())
		}
	}
	clients := trustList(h2).Clients
	if len(clients) != 1 || clients[0].Name != "h1" {
		t.Fatalf("h2 trusts %+v, want only h1", clients)
	}

	checkRawClients(t, h1, h2)

	h1.must("list", "h2:")
	h2.must("trust", "remove", "h1")
	h1.expectFail(1, "does not trust", "list", "h2:")
}

// checkRawClients talks to h2's API from h1's namespace as programs that are
// not lodge would: without a certificate, with TLS 1.2, and with a
// certificate h2 does not trust.
func checkRawClients(t *testing.T, h1, h2 *host) {
	t.Helper()
	get := func(cfg *tls.Config, path string) (int, string, error) {
		conn, err := h1.dial(h2.endpoint())
		if err != nil {
			return 0, "", err
		}
		defer conn.Close()
		tc := tls.Client(conn, cfg)
		fmt.Fprintf(tc, "GET %s HTTP/1.1\r\nHost: h2\r\nConnection: close\r\n\r\n", path)
		resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
		if err != nil {
			return 0, "", err
		}
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), nil
	}
	noCert := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}
	if code, body, err := get(noCert, "/1.0/containers"); err == nil {
		t.Errorf("a client without a certificate got an answer: %d %s", code, body)
	} else {
		t.Logf("without a certificate: %v", err)
	}
	tls12 := &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12}
	if code, body, err := get(tls12, "/1.0/containers"); err == nil {
		t.Errorf("a TLS 1.2 client got an answer: %d %s", code, body)
	}
	certPEM, keyPEM, err := pki.New("stranger")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	stranger := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}}
	code, body, err := get(stranger, "/1.0/containers")
	if err != nil || code != http.StatusForbidden || !strings.Contains(body, `"not-trusted"`) {
		t.Errorf("an untrusted certificate: %d %s %v; want 403 not-trusted", code, body, err)
	}
}

// TestRemoteCommands: lodge list h2: and info, start, stop h2:NAME from h1
// go to h2's manager; killing h2's lodge serve leaves its running container
// running, and a restarted serve answers again.
func TestRemoteCommands(t *testing.T) {
	hs := newTwoHosts(t)
	h1, h2 := hs.h1, hs.h2
	h2.createBusybox("c1")
	h2.must("start", "c1")
	h2.startServe()
	hs.trust(h1, h2, "h2")

	var listed []info
	if err := json.Unmarshal([]byte(h1.must("list", "h2:", "--format", "json")), &listed); err != nil {
		t.Fatal(err)
	}
	local := h2.info("c1")
	if len(listed) != 1 || listed[0].Name != "c1" || listed[0].State != "RUNNING" || listed[0].PID != local.PID {
		t.Fatalf("lodge list h2: = %+v; h2 says %+v", listed, local)
	}
	if table := h1.must("list", "h2:"); !strings.Contains(table, "c1") || !strings.Contains(table, "RUNNING") {
		t.Fatalf("lodge list h2: table:\n%s", table)
	}
	var remote info
	if err := json.Unmarshal([]byte(h1.must("info", "h2:c1", "--format", "json")), &remote); err != nil {
		t.Fatal(err)
	}
	if remote.Name != "c1" || remote.PID != local.PID || remote.IDMap != local.IDMap {
		t.Fatalf("lodge info h2:c1 = %+v; h2 says %+v", remote, local)
	}
	if len(h1.list()) != 0 {
		t.Fatal("h2's container shows in h1's own list")
	}
	// The manager's errors keep their exit statuses across the wire.
	h1.expectFail(3, "not found", "info", "h2:nope")
	h1.expectFail(4, "is running", "start", "h2:c1")
	h1.expectFail(3, "no remote named", "list", "h3:")

	h1.must("stop", "h2:c1", "--timeout", "20")
	if got := h2.info("c1").State; got != "STOPPED" {
		t.Fatalf("after lodge stop h2:c1, h2 says %s", got)
	}
	h1.expectFail(4, "not running", "stop", "h2:c1")
	h1.must("start", "h2:c1")
	running := h2.info("c1")
	if running.State != "RUNNING" {
		t.Fatalf("after lodge start h2:c1, h2 says %s", running.State)
	}

	// A crash of lodge serve touches no container.
	h2.killServe()
	h1.expectFail(1, "h2", "list", "h2:") // nothing listens
	if err := syscall.Kill(running.PID, 0); err != nil {
		t.Fatalf("c1's init (pid %d) after lodge serve was killed: %v", running.PID, err)
	}
	if after := h2.info("c1"); after.State != "RUNNING" || after.PID != running.PID || after.Monitor != "running" {
		t.Fatalf("c1 after lodge serve was killed: %+v, was %+v", after, running)
	}
	h2.startServe()
	if err := json.Unmarshal([]byte(h1.must("list", "h2:", "--format", "json")), &listed); err != nil {
		t.Fatal(err)
	}
	if len(listed) != 1 || listed[0].PID != running.PID {
		t.Fatalf("after a restart of lodge serve: %+v", listed)
	}
	// A request is logged once answered, on serve's stderr: wait for it.
	if !eventually(10*time.Second, func() bool { return strings.Contains(h2.serveLogs(), "path=/1.0/containers client=h1") }) {
		t.Errorf("h2's lodge serve did not log h1's requests:\n%s", h2.serveLogs())
	}
}

type trustListing struct {
	Clients []struct {
		Name        string `json:"name"`
		Fingerprint string `json:"fingerprint"`
	} `json:"clients"`
	Tokens []struct {
		Name string `json:"name"`
	} `json:"tokens"`
}

func trustList(h *host) trustListing {
	h.t.Helper()
	var l trustListing
	if err := json.Unmarshal([]byte(h.must("trust", "list", "--format", "json")), &l); err != nil {
		h.t.Fatal(err)
	}
	return l
}

// TestTwoHostsLinkBridges: the harness joins a network's bridge on each host
// into one L2 segment (what migration of a container with a NIC needs).
func TestTwoHostsLinkBridges(t *testing.T) {
	hs := newTwoHosts(t)
	bridges := make([]string, 2)
	for i, h := range []*host{hs.h1, hs.h2} {
		var created struct {
			Bridge string `json:"bridge"`
		}
		if err := json.Unmarshal([]byte(h.must("network", "create", "seg", "--subnet", "10.77.0.0/24", "--format", "json")), &created); err != nil {
			t.Fatal(err)
		}
		bridges[i] = created.Bridge
		// An address of the test's own on each bridge, to see the segment.
		mustRun(t, "ip", "-n", h.netns, "addr", "add", fmt.Sprintf("10.78.0.%d/24", i+1), "dev", created.Bridge)
	}
	hs.linkBridges(t, bridges[0], bridges[1])
	// -w: send until one reply comes (a hang guard, not a timing assertion).
	if out, err := hs.h1.inNetns("ping", "-c", "1", "-w", "30", "10.78.0.2").CombinedOutput(); err != nil {
		t.Fatalf("h1 cannot reach h2's bridge over the link: %v\n%s", err, out)
	}
}
