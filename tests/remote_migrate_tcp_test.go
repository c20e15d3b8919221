package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRemoteMigrateTCP is issue 13's migration test: two containers with a
// NIC and a static address, on a network both hosts have (their bridges
// joined into one L2 segment), go h1 -> h2 -> h1 ... ten times with lodge
// migrate, each with an open TCP connection from a container on h2 (peer)
// that sends a line a second:
//   - mig, a busybox whose init counts in memory: the counter goes on;
//   - deb, a stock Debian with systemd: it stays `running` with no failed
//     unit.
//
// The listeners (nc -l, busybox's) take one connection: lines that go on
// arriving after a migration came over the same connection, never a new one.
// Every round prints the downtime. LODGE_TCP_PCAP=DIR records both
// bridges' TCP and ARP frames into DIR (how the reset it once lost was
// found: see migrate/netlock.go).
func TestRemoteMigrateTCP(t *testing.T) {
	needCRIU(t)
	hs := newMigrationHosts(t)
	h1, h2 := hs.h1, hs.h2
	bridges := hs.segment(t, "seg", "10.78.0.0/24")
	if dir := os.Getenv("LODGE_TCP_PCAP"); dir != "" {
		for i, h := range []*host{h1, h2} {
			c := h.inNetns("tcpdump", "-i", bridges[i], "-w", filepath.Join(dir, h.name+".pcap"), "-U", "tcp or arp")
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Process.Kill(); c.Wait() })
		}
	}
	hs.serveEachOther()

	h2.createBusybox("peer", "network.0.network=seg", "network.0.ipv4=10.78.0.20")
	h2.must("start", "peer")
	h1.createBusybox("hold") // takes h1's first id range, which peer holds on h2
	h1.createBusybox("mig", counterEvery100ms, "limits.memory=64MiB", "network.0.network=seg", "network.0.ipv4=10.78.0.10")
	h1.must("create", "deb", "--template", "debian", "-c", "network.0.network=seg", "-c", "network.0.ipv4=10.78.0.30")
	h1.must("start", "mig")
	h1.must("start", "deb")
	waitCounterAbove(t, h1.env, "mig", 5)
	waitRunning(t, h1.env, "deb")

	// The listeners, then peer's two senders.
	h1.must("exec", "mig", "--", "sh", "-c", "(sleep 100000 | nc -l -p 5000 >/tcp.log 2>&1) </dev/null >/dev/null 2>&1 &")
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatalf("the host's static busybox, for a listener in Debian: %v", err)
	}
	if r := h1.runInput(string(bb), "exec", "deb", "--", "sh", "-c", "cat > /usr/local/bin/busybox && chmod 755 /usr/local/bin/busybox"); r.code != 0 {
		t.Fatalf("copy busybox into deb: %s", r)
	}
	h1.must("exec", "deb", "--", "systemd-run", "--unit=tcp-listener", "sh", "-c", "sleep 100000 | busybox nc -l -p 5000 > /root/tcp.log")
	listening := func(h *host, name string) bool {
		// Port 5000 (0x1388) in state LISTEN (0A), on IPv4 or IPv6.
		return regexpFind(`:1388 0+:0000 0A`, h.run("exec", name, "--", "cat", "/proc/net/tcp", "/proc/net/tcp6").stdout)
	}
	waitUntil(t, "mig and deb to listen on 5000", func() bool { return listening(h1, "mig") && listening(h1, "deb") })
	for _, to := range []string{"10.78.0.10", "10.78.0.30"} {
		h2.must("exec", "peer", "--", "sh", "-c", "(i=0; while :; do i=$((i+1)); echo $i; sleep 1; done | nc "+to+" 5000) </dev/null >/dev/null 2>&1 &")
	}
	logs := map[string]string{"mig": "/tcp.log", "deb": "/root/tcp.log"}
	lastLine := func(h *host, name string) int {
		lines := strings.Fields(h.run("exec", name, "--", "cat", logs[name]).stdout)
		if len(lines) == 0 {
			return 0
		}
		n, _ := strconv.Atoi(lines[len(lines)-1])
		return n
	}
	waitUntil(t, "the first lines over TCP", func() bool { return lastLine(h1, "mig") >= 2 && lastLine(h1, "deb") >= 2 })

	hosts := []*host{h1, h2}
	for round := range 10 {
		from, to := hosts[round%2], hosts[1-round%2]
		before := readCounter(t, from.env, "mig")
		lines := map[string]int{}
		for _, name := range []string{"mig", "deb"} {
			r := from.run("migrate", name, to.name)
			if r.code != 0 {
				t.Fatalf("round %d: lodge migrate %s %s on %s: %s\n%s's serve:\n%s", round, name, to.name, from.name, r, to.name, to.serveLogs())
			}
			downtime := ""
			for _, l := range strings.Split(r.stdout, "\n") {
				if strings.Contains(l, "downtime") {
					downtime = strings.TrimSpace(l)
				}
			}
			if downtime == "" {
				t.Errorf("round %d: no downtime in:\n%s", round, r.stdout)
			}
			t.Logf("round %d, %s -> %s: %s", round, from.name, to.name, downtime)
			gone(t, from.env, name)
			lines[name] = lastLine(to, name)
		}
		moved := time.Now()
		after := readCounter(t, to.env, "mig")
		if after < before {
			t.Fatalf("round %d: the counter went from %d to %d: mig was booted, not migrated", round, before, after)
		}
		waitCounterAbove(t, to.env, "mig", after)
		if state := strings.TrimSpace(to.run("exec", "deb", "--", "systemctl", "is-system-running").stdout); state != "running" {
			t.Fatalf("round %d: after the migration deb's systemd is %q\n%s", round, state, to.run("exec", "deb", "--", "systemctl", "--failed", "--no-pager").stdout)
		}
		if failed := to.must("exec", "deb", "--", "systemctl", "--failed", "--no-legend"); strings.TrimSpace(failed) != "" {
			t.Fatalf("round %d: failed units in deb after the migration:\n%s", round, failed)
		}
		for _, name := range []string{"mig", "deb"} {
			deadline := time.Now().Add(time.Minute) // a hang guard
			for lastLine(to, name) < lines[name]+3 {
				if time.Now().After(deadline) {
					t.Fatalf("round %d (%s -> %s): no new lines in %s after %d on the migrated TCP connection\n%s", round, from.name, to.name, name, lines[name], tcpDiagnostics(hs, bridges, to))
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		t.Logf("round %d: mig's counter went on from %d; the TCP lines went on (mig from %d, deb from %d), 3 more each within %v",
			round, before, lines["mig"], lines["deb"], time.Since(moved).Round(100*time.Millisecond))
	}
}

// tcpDiagnostics is what a lost connection is debugged with: both bridges'
// forwarding tables, and the containers' TCP sockets and neighbours.
func tcpDiagnostics(hs *twoHosts, bridges []string, migHost *host) string {
	var b strings.Builder
	for i, h := range []*host{hs.h1, hs.h2} {
		out, _ := h.inNetns("bridge", "fdb", "show", "br", bridges[i]).CombinedOutput()
		fmt.Fprintf(&b, "%s bridge fdb:\n%s\n", h.name, out)
	}
	for _, c := range []struct {
		h    *host
		name string
	}{{hs.h2, "peer"}, {migHost, "mig"}, {migHost, "deb"}} {
		i := c.h.info(c.name)
		for _, args := range [][]string{{"ip", "neigh"}, {"ip", "-br", "addr"}, {"ss", "-tnio"}} {
			out, _ := exec.Command("nsenter", append([]string{"--net=/proc/" + strconv.Itoa(i.PID) + "/ns/net", "--"}, args...)...).CombinedOutput()
			fmt.Fprintf(&b, "%s (%s) %s:\n%s\n", c.name, c.h.name, strings.Join(args, " "), out)
		}
	}
	return b.String()
}
