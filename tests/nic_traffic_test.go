package tests

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"lodge/internal/testreq"
)

// Traffic through what lodge sets up at start: a port forward reached from
// the host's loopback, and bandwidth limits measured with iperf3 between
// two containers. iperf3 is the host's, run in a container's network
// namespace only (nsenter --net), so the path is the container's veth and
// bridge; busybox needs none.

// freePort is a TCP port of the host nobody listens on at the moment.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// httpGet fetches url with a short timeout.
func httpGet(url string) (string, error) {
	client := http.Client{Timeout: 3 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}

func TestPortForwardFromHostLoopback(t *testing.T) {
	e := newEnv(t)
	e.must("network", "create", "pf", "--subnet", "10.201.22.0/24")
	port := freePort(t)
	e.createBusybox("web", "network.0.network=pf", "network.0.ipv4=10.201.22.10",
		fmt.Sprintf("proxy.http=tcp:0.0.0.0:%d:80", port))
	e.must("start", "web")
	e.must("exec", "web", "--", "sh", "-c", "mkdir -p /www && echo hello from web >/www/index.html && httpd -p 80 -h /www")

	for _, host := range []string{"127.0.0.1", "10.201.22.1"} {
		url := fmt.Sprintf("http://%s:%d/", host, port)
		body, err := httpGet(url)
		if err != nil || !strings.Contains(body, "hello from web") {
			t.Errorf("GET %s through the forward: %q, %v", url, body, err)
		}
	}
	if info := e.must("info", "web"); !strings.Contains(info, fmt.Sprintf("tcp:0.0.0.0:%d:80", port)) {
		t.Errorf("info lacks the forward:\n%s", info)
	}

	// Removed on the running container: gone at once.
	e.must("config", "set", "web", "proxy.http=")
	if body, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/", port)); err == nil {
		t.Errorf("the removed forward still answers: %q", body)
	}
	// Added on the running container: there at once.
	e.must("config", "set", "web", fmt.Sprintf("proxy.http=tcp:127.0.0.1:%d:80", port))
	if body, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/", port)); err != nil || !strings.Contains(body, "hello from web") {
		t.Errorf("the forward added while running: %q, %v", body, err)
	}
	e.must("stop", "web")
	if out, _ := exec.Command("nft", "list", "ruleset").Output(); strings.Contains(string(out), "fwd-"+e.netTag+"-web") {
		t.Errorf("the forward's chain is left after stop:\n%s", out)
	}
	e.assertNoNICLeftovers("web")
}

// iperf3Mbits runs an iperf3 client in the network namespace of pid
// against server for a few seconds and returns what the server received,
// in Mbit/s.
func iperf3Mbits(t *testing.T, pid int, server string) float64 {
	t.Helper()
	out, err := exec.Command("nsenter", "--net=/proc/"+strconv.Itoa(pid)+"/ns/net",
		"iperf3", "-c", server, "-t", "3", "-O", "1", "-J").Output()
	if err != nil {
		t.Fatalf("iperf3 -c %s: %v\n%s", server, err, out)
	}
	var r struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("iperf3 output: %v\n%s", err, out)
	}
	return r.End.SumReceived.BitsPerSecond / 1e6
}

func TestEgressLimitLive(t *testing.T) {
	if _, err := exec.LookPath("iperf3"); err != nil {
		testreq.Skip(t, "iperf3", "no iperf3: apt-get install iperf3 (make deps does it)")
	}
	e := newEnv(t)
	e.must("network", "create", "bw", "--subnet", "10.201.23.0/24")
	e.createBusybox("srv", "network.0.network=bw", "network.0.ipv4=10.201.23.10")
	e.createBusybox("cli", "network.0.network=bw", "network.0.ipv4=10.201.23.11")
	e.must("start", "srv")
	e.must("start", "cli")
	server := exec.Command("nsenter", "--net=/proc/"+strconv.Itoa(e.info("srv").PID)+"/ns/net", "iperf3", "-s", "-B", "10.201.23.10")
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Process.Kill(); server.Wait() })
	cli := e.info("cli").PID
	waitUntil(t, "the iperf3 server in srv", func() bool {
		// Listening on port 5201 (hex 1451, state 0A) in srv's namespace.
		tcp, _ := os.ReadFile("/proc/" + strconv.Itoa(e.info("srv").PID) + "/net/tcp")
		return strings.Contains(string(tcp), ":1451 00000000:0000 0A")
	})

	e.must("config", "set", "cli", "limits.network.egress=10Mbit")
	limited := iperf3Mbits(t, cli, "10.201.23.10")
	e.must("config", "set", "cli", "limits.network.egress=")
	free := iperf3Mbits(t, cli, "10.201.23.10")
	t.Logf("cli -> srv: %.1f Mbit/s with egress 10Mbit, %.1f Mbit/s without", limited, free)
	// Loose bounds: a check that the limit is the one set and goes, not a
	// benchmark (make bench measures).
	if limited < 5 || limited > 15 {
		t.Errorf("with limits.network.egress=10Mbit the container sent %.1f Mbit/s", limited)
	}
	if free < 5*limited {
		t.Errorf("after the limit was removed the container sent %.1f Mbit/s (%.1f with it)", free, limited)
	}
}
