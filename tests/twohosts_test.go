package tests

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// Two hosts on one machine, for the host API and migration tests.
//
//	test process (the machine's own network namespace: untouched)
//	  ├─ h1: env (root, host config, cgroup, id range, network tag)
//	  │      network namespace lodge-ID-h1: lo, lhID-a 10.213.N.1/24
//	  │      lodge serve --listen 10.213.N.1:8443 (when started)
//	  └─ h2: the same with lodge-ID-h2, lhID-b 10.213.N.2/24
//	  lhID-a <─veth─> lhID-b: the hosts' link; nothing else is routed
//
// Every lodge command of a host runs in its namespace (env.bin is a wrapper
// that enters it with nsenter --net, only the network namespace: mounts,
// cgroups and processes stay the machine's, so the env's checks for
// leftovers still see everything), so its networks' bridges, its views
// server and its containers' monitors live there. linkBridges joins two
// bridges, one per host, into one L2 segment, as hosts on one VLAN.
// Everything is removed in t.Cleanup: the namespaces, with every interface
// in them, after the envs' own cleanup.

// host is one host of a two-host test.
type host struct {
	*env
	name  string // h1, h2
	netns string // its network namespace, /run/netns/NAME
	addr  string // its address on the hosts' link

	mu    sync.Mutex
	serve *exec.Cmd // the running lodge serve, or nil
	logs  *lockedBuffer
}

type twoHosts struct {
	h1, h2 *host
	id     string
}

// newTwoHosts makes two hosts joined by a veth pair. Neither serves yet.
func newTwoHosts(t *testing.T) *twoHosts {
	t.Helper()
	requireRoot(t)
	for _, tool := range []string{"ip", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed for two-host tests (apt-get install iproute2 util-linux): %v", tool, err)
		}
	}
	id := randomHex(3)
	var n int
	fmt.Sscanf(id[:2], "%x", &n)
	subnet := fmt.Sprintf("10.213.%d", n) // in the hosts' namespaces only
	hs := &twoHosts{id: id}
	hs.h1 = newHost(t, "h1", "lodge-"+id+"-h1", subnet+".1")
	hs.h2 = newHost(t, "h2", "lodge-"+id+"-h2", subnet+".2")
	a, b := "lh"+id+"-a", "lh"+id+"-b"
	mustRun(t, "ip", "link", "add", a, "netns", hs.h1.netns, "type", "veth", "peer", "name", b, "netns", hs.h2.netns)
	for _, end := range []struct {
		h   *host
		dev string
	}{{hs.h1, a}, {hs.h2, b}} {
		mustRun(t, "ip", "-n", end.h.netns, "addr", "add", end.h.addr+"/24", "dev", end.dev)
		mustRun(t, "ip", "-n", end.h.netns, "link", "set", end.dev, "up")
	}
	return hs
}

// newHost makes the network namespace first, so that its removal is the
// last cleanup, after the env's (which runs lodge in it).
func newHost(t *testing.T, name, ns, addr string) *host {
	mustRun(t, "ip", "netns", "add", ns)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns, err, out)
		}
	})
	mustRun(t, "ip", "-n", ns, "link", "set", "lo", "up")
	h := &host{env: newEnv(t), name: name, netns: ns, addr: addr, logs: &lockedBuffer{}}
	wrapper := filepath.Join(t.TempDir(), "lodge-in-"+name)
	script := fmt.Sprintf("#!/bin/sh\nexec nsenter --net=%s -- %s \"$@\"\n", h.nsPath(), filepath.Join(binDir, "lodge"))
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	h.bin = wrapper
	t.Cleanup(h.stopServe) // before the env's cleanup
	return h
}

func (h *host) nsPath() string { return "/run/netns/" + h.netns }

// endpoint is the address its lodge serve listens on.
func (h *host) endpoint() string { return h.addr + ":8443" }

// inNetns returns a command that runs in the host's network namespace.
func (h *host) inNetns(name string, args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--net=" + h.nsPath(), "--", name}, args...)...)
}

// startServe starts lodge serve on the host and returns once it listens.
func (h *host) startServe() {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.serve != nil {
		h.t.Fatalf("%s: lodge serve runs already", h.name)
	}
	cmd := h.command(context.Background(), "serve", "--listen", h.endpoint())
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		h.t.Fatal(err)
	}
	cmd.Stderr = h.logs
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	h.serve = cmd
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "Serving on ") {
				ready <- sc.Text()
			}
		}
		close(ready)
	}()
	select {
	case line, ok := <-ready:
		if !ok {
			h.t.Fatalf("%s: lodge serve exited before it listened:\n%s", h.name, h.logs)
		}
		h.t.Logf("%s: %s", h.name, line)
	case <-time.After(time.Minute): // a hang guard, not a timing assertion
		h.t.Fatalf("%s: lodge serve did not listen within a minute:\n%s", h.name, h.logs)
	}
}

// killServe kills the host's lodge serve with SIGKILL, as a crash would.
func (h *host) killServe() {
	h.t.Helper()
	h.endServe(syscall.SIGKILL)
}

// stopServe stops the host's lodge serve, if it runs, with SIGTERM.
func (h *host) stopServe() { h.endServe(syscall.SIGTERM) }

func (h *host) endServe(sig syscall.Signal) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.serve == nil {
		return
	}
	h.serve.Process.Signal(sig) // its own pid: the wrapper and nsenter exec'd it
	done := make(chan error, 1)
	go func() { done <- h.serve.Wait() }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		h.serve.Process.Kill()
		<-done
		h.t.Errorf("%s: lodge serve ignored %v for a minute", h.name, sig)
	}
	h.serve = nil
}

// serveLogs is what the host's lodge serve logged so far.
func (h *host) serveLogs() string { return h.logs.String() }

// trust makes a token on to for a client named as from's name, and has
// from add to as the remote remoteName.
func (hs *twoHosts) trust(from, to *host, remoteName string) {
	from.t.Helper()
	token := strings.TrimSpace(to.must("trust", "add", "--name", from.name))
	from.must("remote", "add", remoteName, to.endpoint(), "--token", token)
}

// dial opens a TCP connection to addr from inside the host's network
// namespace, for clients that are not lodge (a TLS client without a
// certificate, say). The socket is made on a thread that enters the
// namespace and is never used again (it ends with its goroutine).
func (h *host) dial(addr string) (net.Conn, error) {
	type result struct {
		conn net.Conn
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		ns, err := netns.GetFromPath(h.nsPath())
		if err != nil {
			ch <- result{nil, err}
			return
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			ch <- result{nil, err}
			return
		}
		conn, err := net.DialTimeout("tcp", addr, 30*time.Second)
		ch <- result{conn, err}
	}()
	r := <-ch
	return r.conn, r.err
}

// linkBridges joins bridge1 of h1 and bridge2 of h2 (kernel names, as
// lodge network show gives them) with a veth pair, into one L2 segment.
func (hs *twoHosts) linkBridges(t *testing.T, bridge1, bridge2 string) {
	t.Helper()
	a, b := "lb"+hs.id+"-a", "lb"+hs.id+"-b"
	mustRun(t, "ip", "link", "add", a, "netns", hs.h1.netns, "type", "veth", "peer", "name", b, "netns", hs.h2.netns)
	mustRun(t, "ip", "-n", hs.h1.netns, "link", "set", a, "master", bridge1, "up")
	mustRun(t, "ip", "-n", hs.h2.netns, "link", "set", b, "master", bridge2, "up")
}

// serveEachOther runs lodge serve on both hosts, each a remote of the
// other (h1 knows h2 as "h2", h2 knows h1 as "h1").
func (hs *twoHosts) serveEachOther() {
	hs.h1.startServe()
	hs.h2.startServe()
	hs.trust(hs.h1, hs.h2, "h2")
	hs.trust(hs.h2, hs.h1, "h1")
}

// segment makes a network of the same name and subnet on both hosts and
// joins their bridges into one L2 segment, as hosts on one VLAN; it
// returns the bridges, h1's first.
func (hs *twoHosts) segment(t *testing.T, name, subnet string) []string {
	t.Helper()
	bridges := make([]string, 2)
	for i, h := range []*host{hs.h1, hs.h2} {
		var created struct {
			Bridge string `json:"bridge"`
		}
		if err := json.Unmarshal([]byte(h.must("network", "create", name, "--subnet", subnet, "--format", "json")), &created); err != nil {
			t.Fatal(err)
		}
		bridges[i] = created.Bridge
	}
	hs.linkBridges(t, bridges[0], bridges[1])
	return bridges
}

func mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var _ io.Writer = (*lockedBuffer)(nil)
